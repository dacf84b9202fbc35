//! The gateway proper: SIP engine, registrar, call switch, RTP relay.
//!
//! `mgw serve` calls [`run_gateway`] after the config is loaded, the store directory exists and
//! the admin server listens, and marks the process ready (`/health` 200) as soon as it returns
//! `Ok`. So `run_gateway` returns only once every SIP listener is bound, and fails with one line
//! naming the key when one cannot be.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mgw_core::admission::{Admission, EmergencyNumbers};
use mgw_core::auth::{NonceCounts, NonceKey};
use mgw_core::directory::Directory;
use mgw_core::endpoint::EndpointConfig;
use mgw_core::licence::LicencePool;
use mgw_core::registrar::{Binding, LocationTable, Record, RegistrarConfig};
use mgw_core::transaction::TimerConfig;
use mgw_engine::{Engine, EngineHandle, ListenAddr};

use crate::admin::{metrics, AdminHandle};
use crate::clock::unix_ms;
use crate::config::{self, Config, ConfigError};
use crate::media::{MediaControl, MediaCounters, MediaWorker};
use crate::provisioning::{api, Provisioning};
use crate::signalling::SwitchLinks;
use crate::signalling::{SipCounters, SipWorker};
use crate::store::calls::CallRecorder;
use crate::store::db::Db;
use crate::store::journal::Journal;
use crate::store::journal::JournalOp;
use mgw_core::call::CallConfig;

/// The engine, shared with the metrics renderer on the admin thread until shutdown takes it.
type SharedEngine = Arc<Mutex<Option<EngineHandle>>>;

/// The running gateway; [`GatewayHandle::shutdown`] stops it.
pub struct GatewayHandle {
    engine: SharedEngine,
    media: Arc<Mutex<Option<mgw_engine::MediaHandle>>>,
    media_control: MediaControl,
    recorder: Option<CallRecorder>,
    journal: Option<Journal>,
    backend: String,
    listeners: Vec<ListenAddr>,
    lines: Option<crate::lines::Lines>,
    trunks: Option<crate::trunks::Trunks>,
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("backend", &self.backend)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl GatewayHandle {
    /// The I/O backend actually running (`io_uring` or `epoll`).
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The in-process control of the media engine (what the B2BUA anchors calls with).
    pub fn media_control(&self) -> &MediaControl {
        &self.media_control
    }

    /// The bound SIP listeners (port 0 resolved).
    pub fn sip_listeners(&self) -> &[ListenAddr] {
        &self.listeners
    }

    /// Stops the workers and joins them. Called once, on SIGTERM/SIGINT, after `/health` has
    /// turned 503.
    pub fn shutdown(mut self) -> Result<(), String> {
        // Trunks unregister first (REGISTER with expires=0), then the lines hang up their
        // calls while the switch still answers.
        if let Some(t) = self.trunks.take() {
            t.shutdown();
        }
        if let Some(l) = self.lines.take() {
            l.shutdown();
            std::thread::sleep(Duration::from_millis(50));
        }
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(e) = engine {
            e.shutdown();
        }
        let media = self
            .media
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(m) = media {
            m.shutdown();
        }
        if let Some(r) = self.recorder.take() {
            r.close();
        }
        // After the workers: every change they made is queued, so nothing is lost.
        if let Some(j) = self.journal.take() {
            j.close();
        }
        Ok(())
    }
}

/// Starts the gateway described by `config`; `admin` receives its metrics and API routes.
pub fn run_gateway(config: &Config, admin: &AdminHandle) -> Result<GatewayHandle, String> {
    let now_unix_ms = unix_ms();
    let directory = Arc::new(Directory::new());
    let location = Arc::new(LocationTable::new());
    let db = Arc::new(Db::open(&config.store.dir).map_err(|e| e.to_string())?);
    let (journal, loaded) =
        Journal::open(&config.store.dir, now_unix_ms).map_err(|e| e.to_string())?;
    let licences = Arc::new(LicencePool::new(0));
    let registrar_cfg = registrar_config(&config.registrar);
    let provisioning = Arc::new(Provisioning::new(
        db.clone(),
        &config.sip.domain,
        directory.clone(),
        location.clone(),
        licences.clone(),
        Some(journal.sender()),
        registrar_cfg.bounds(),
    ));
    let total = provisioning
        .initial_licence_total(config.licences.total)
        .map_err(|e| e.to_string())?;
    licences
        .set_total(total)
        .map_err(|e| format!("licences.total: {e}"))?;
    if let Some(path) = &config.accounts.import_csv {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("accounts.import_csv {}: {e}", path.display()))?;
        let report = provisioning.import_csv(&text).map_err(|e| {
            format!(
                "accounts.import_csv {}: {e}; fix the file and restart",
                path.display()
            )
        })?;
        log::info!(
            "imported {} log-on(s) from {} ({} new, {} changed, {} new account(s), {} removed)",
            report.rows,
            path.display(),
            report.log_ons_created,
            report.log_ons_changed,
            report.accounts_created,
            report.removed.len()
        );
    }
    let (accounts, log_ons) = provisioning.load().map_err(|e| e.to_string())?;
    log::info!(
        "store {}: {accounts} account(s), {log_ons} log-on(s), {total} licence(s)",
        provisioning.db().path().display()
    );
    for (user, binding) in &loaded {
        // A binding of a log-on deleted while mgw was down is not restored.
        if directory.get(user).is_none() {
            journal.sender().send(JournalOp::Del {
                user: user.clone(),
                contact: binding.contact.clone(),
            });
            continue;
        }
        location.update(user, |cur| {
            let mut r: Record = cur.cloned().unwrap_or_default();
            r.bindings.retain(|b| b.contact != binding.contact);
            r.bindings.push(binding.clone());
            r
        });
    }
    let loaded: Vec<(Box<str>, Binding)> = loaded
        .into_iter()
        .filter(|(u, _)| directory.get(u).is_some())
        .collect();
    if !loaded.is_empty() {
        log::info!(
            "restored {} binding(s) from {}",
            loaded.len(),
            config.store.dir.display()
        );
    }
    let admission = Admission::new(
        directory.clone(),
        licences.clone(),
        EmergencyNumbers::new(&config.emergency.numbers),
    );
    let loaded: Arc<Vec<(Box<str>, Binding)>> = Arc::new(loaded);
    let journal_tx = journal.sender();
    // Line drivers sit on the switch's own address, so the switch and they reach each other
    // over loopback (or the host's address when SIP listens on one).
    let switch_addr = config
        .sip
        .listen
        .iter()
        .find(|l| l.transport == config::Transport::Udp && l.addr.is_ipv4())
        .or_else(|| {
            config
                .sip
                .listen
                .iter()
                .find(|l| l.transport == config::Transport::Udp)
        })
        .map(|l| {
            let ip = if l.addr.ip().is_unspecified() {
                if l.addr.is_ipv4() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                }
            } else {
                l.addr.ip()
            };
            SocketAddr::new(ip, l.addr.port())
        });
    // Line sockets are on loopback whatever SIP listens on: only the switch (and its media
    // engine) may reach them.
    let prepared = match switch_addr {
        Some(a) => crate::lines::prepare(
            config,
            if a.is_ipv4() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            },
        )?,
        None if config.isdn.is_empty() && config.dect.is_empty() => Vec::new(),
        None => {
            return Err(
                "[[isdn]] and [[dect]] lines need a UDP SIP listener in [sip] listen".to_string(),
            )
        }
    };
    // Trunks stored through the admin API replace [[trunk]] sections of the same name.
    let mut with_stored = config.clone();
    for (name, json) in crate::store::trunks::load(&db).map_err(|e| e.to_string())? {
        match crate::store::trunks::parse(&name, &json) {
            Ok(t) => {
                with_stored.trunks.retain(|x| x.name != name);
                with_stored.trunks.push(t);
            }
            Err(e) => log::warn!("stored trunk {name} is not usable ({e}); ignored"),
        }
    }
    let (prepared_trunks, trunk_peers) = crate::trunks::PreparedTrunks::new(&with_stored);
    let mut peers = prepared
        .iter()
        .map(crate::lines::PreparedLine::peer)
        .collect::<Result<Vec<_>, _>>()?;
    peers.extend(trunk_peers);
    let peers = mgw_core::call::peer::Peers::new(peers);
    let trunk_peer_table = peers.clone();
    let r = &config.registrar;
    let endpoint_cfg = EndpointConfig {
        domain: config.sip.domain.clone(),
        server: config.sip.user_agent.clone(),
        nonce_lifetime: Duration::from_secs(r.nonce_lifetime_s),
        nonce_key: NonceKey::new(random_key().map_err(|e| format!("reading /dev/urandom: {e}"))?),
        sha256_first: r.sha256_first,
        md5_only_user_agents: r.md5_only_user_agents.clone(),
        epoch: Instant::now(),
        epoch_unix_ms: now_unix_ms,
        timers: TimerConfig {
            t1: config.sip.t1(),
            t2: config.sip.t2(),
            t4: config.sip.t4(),
            ..TimerConfig::default()
        },
        registrar: registrar_cfg,
        directory: directory.clone(),
        location: location.clone(),
        nonce_counts: Arc::new(NonceCounts::new()),
        admission,
        calls: CallConfig {
            domain: config.sip.domain.clone(),
            local: config.sip_advertised(),
            local6: config.sip_advertised6(),
            server: config.sip.user_agent.clone(),
            no_answer: Duration::from_secs(config.calls.no_answer_s),
            dial_plan: config.dial_plan(),
            t1: config.sip.t1(),
            t2: config.sip.t2(),
            session_expires: Duration::from_secs(config.calls.session_expires_s),
            min_se: Duration::from_secs(config.calls.min_se_s),
            peers,
        },
        worker: 0,
    };
    // Media first: the SIP workers anchor calls on it.
    let media_counters: Arc<Vec<Arc<MediaCounters>>> = Arc::new(
        (0..config.engine.workers.max(1))
            .map(|_| Arc::new(MediaCounters::default()))
            .collect(),
    );
    let (media, media_control) = start_media(config, media_counters.clone())?;
    let recorder = CallRecorder::start(&config.store.dir)?;
    let mailboxes: Arc<std::sync::OnceLock<Vec<mgw_engine::Mailbox>>> =
        Arc::new(std::sync::OnceLock::new());
    let udp = |v6: bool| {
        config
            .sip
            .listen
            .iter()
            .find(|l| l.transport == config::Transport::Udp && l.addr.is_ipv6() == v6)
            .map(|l| l.addr)
    };
    let links = SwitchLinks {
        media: media_control.clone(),
        mailboxes: mailboxes.clone(),
        calls: recorder.log(),
        udp_v4: udp(false),
        udp_v6: udp(true),
    };
    let engine_cfg = mgw_engine::EngineConfig {
        workers: config.engine.workers,
        backend: match config.engine.backend {
            config::Backend::Auto => mgw_engine::Backend::Auto,
            config::Backend::IoUring => mgw_engine::Backend::IoUring,
            config::Backend::Epoll => mgw_engine::Backend::Epoll,
        },
        listen: config
            .sip
            .listen
            .iter()
            .map(|l| match l.transport {
                config::Transport::Udp => ListenAddr::udp(l.addr),
                config::Transport::Tcp => ListenAddr::tcp(l.addr),
            })
            .collect(),
        tcp_idle_timeout: config.sip.tcp_idle_timeout(),
        tcp_max_connections: config.sip.tcp_max_connections,
        ..mgw_engine::EngineConfig::default()
    };
    let counters: Arc<Vec<Arc<SipCounters>>> = Arc::new(
        (0..engine_cfg.workers.max(1))
            .map(|_| Arc::new(SipCounters::default()))
            .collect(),
    );
    let per_worker = counters.clone();
    let workers = engine_cfg.workers.max(1);
    let engine = Engine::start(engine_cfg, move |worker| {
        let mut cfg = endpoint_cfg.clone();
        cfg.worker = worker as u16;
        let mut w = SipWorker::switching(
            cfg,
            per_worker[worker % per_worker.len()].clone(),
            journal_tx.clone(),
            links.clone(),
        );
        // Restored bindings are spread over the workers' expiry wheels.
        for (i, (user, b)) in loaded.iter().enumerate() {
            if i % workers == worker {
                w.watch_binding(user, b);
            }
        }
        w
    })
    .map_err(|e| bind_error(config, e))?;
    log::info!(
        "SIP engine: {} worker(s), {} backend",
        engine.workers(),
        engine.backend()
    );
    let _ = mailboxes.set((0..engine.workers()).map(|w| engine.mailbox(w)).collect());
    let sip_mail = mailboxes.clone();
    media_control.on_inactive(move |n| crate::signalling::media_inactive(&sip_mail, &n.call_id));
    admin.with_router(|r| api::routes(r, &provisioning));
    let active = recorder.active();
    admin.with_router(|r| crate::provisioning::api::call_routes(r, active));
    log::info!(
        "media relay: {} worker(s), {} backend, ports {}, SDP address {}{}",
        media.workers(),
        media.backend(),
        config.media.rtp_ports,
        config.media.advertised(),
        media
            .control_addr()
            .map(|a| format!(", ng control on udp:{a}"))
            .unwrap_or_default()
    );
    let lines = match switch_addr {
        Some(switch) if !prepared.is_empty() => {
            // The listener may have been asked for port 0.
            let bound = engine
                .local_addrs()
                .iter()
                .find(|l| l.transport == mgw_engine::Transport::Udp && l.addr.ip() == switch.ip())
                .map_or(switch, |l| SocketAddr::new(switch.ip(), l.addr.port()));
            let lines = crate::lines::Lines::start(prepared, bound, &config.sip.domain)?;
            admin.with_router(|r| crate::lines::routes(r, lines.handle()));
            Some(lines)
        }
        _ => {
            let none = crate::lines::LinesHandle::empty();
            admin.with_router(|r| crate::lines::routes(r, none));
            None
        }
    };
    // The trunk thread runs even with no trunk configured: the admin API may add one.
    let trunks = {
        let bound = engine.local_addrs();
        let contact = |tcp: bool, v6: bool| {
            bound
                .iter()
                .find(|l| {
                    (l.transport == mgw_engine::Transport::Tcp) == tcp && l.addr.is_ipv6() == v6
                })
                .map(|l| advertised(config, l.addr))
        };
        let contacts = crate::trunks::Contacts {
            udp4: contact(false, false),
            udp6: contact(false, true),
            tcp4: contact(true, false),
            tcp6: contact(true, true),
        };
        let timers = TimerConfig {
            t1: config.sip.t1(),
            t2: config.sip.t2(),
            t4: config.sip.t4(),
            ..TimerConfig::default()
        };
        let t =
            prepared_trunks.start(contacts, &config.sip.user_agent, timers, trunk_peer_table)?;
        let store = crate::trunks::TrunkStore {
            db: db.clone(),
            base: config.clone(),
            from_file: config.trunks.iter().map(|t| t.name.clone()).collect(),
        };
        admin.with_router(|r| crate::trunks::routes(r, t.handle(), Some(store)));
        Some(t)
    };
    let media = Arc::new(Mutex::new(Some(media)));
    let handle = GatewayHandle {
        trunks,
        lines,
        media: media.clone(),
        media_control: media_control.clone(),
        recorder: Some(recorder),
        journal: Some(journal),
        backend: engine.backend().to_string(),
        listeners: engine.local_addrs(),
        engine: Arc::new(Mutex::new(Some(engine))),
    };
    let shared = handle.engine.clone();
    let metrics_location = location.clone();
    let metrics_licences = licences.clone();
    let metrics_media = media;
    admin.add_metrics(move |out: &mut String| {
        let stats = shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(EngineHandle::stats)
            .unwrap_or_default();
        render_metrics(out, &counters, &stats);
        let media_stats = metrics_media
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(mgw_engine::MediaHandle::stats)
            .unwrap_or_default();
        render_media_metrics(out, &media_counters, &media_stats);
        metrics::gauge(
            out,
            "mgw_licences_total",
            "Floating SIP licences",
            metrics_licences.total(),
        );
        metrics::gauge(
            out,
            "mgw_licences_in_use",
            "Licences held by a log-on",
            metrics_licences.in_use(),
        );
        metrics::gauge(
            out,
            "mgw_registrar_bindings",
            "Registered contacts",
            metrics_location.bindings(),
        );
        metrics::gauge(
            out,
            "mgw_registrar_users",
            "Log-ons with at least one binding",
            metrics_location.len(),
        );
    });
    Ok(handle)
}

fn render_metrics(
    out: &mut String,
    counters: &[Arc<SipCounters>],
    stats: &[mgw_engine::WorkerStats],
) {
    let sum = |f: fn(&SipCounters) -> &std::sync::atomic::AtomicU64| -> u64 {
        counters.iter().map(|c| f(c).load(Ordering::Relaxed)).sum()
    };
    metrics::counter(
        out,
        "mgw_sip_requests_total",
        "SIP requests received",
        sum(|c| &c.requests),
    );
    metrics::counter(
        out,
        "mgw_sip_responses_received_total",
        "SIP responses received",
        sum(|c| &c.responses_received),
    );
    metrics::counter(
        out,
        "mgw_sip_malformed_total",
        "Messages refused as malformed (400/505/513 or dropped)",
        sum(|c| &c.malformed),
    );
    metrics::counter(
        out,
        "mgw_sip_dropped_total",
        "Messages dropped without answer",
        sum(|c| &c.dropped),
    );
    metrics::counter(
        out,
        "mgw_sip_sent_total",
        "SIP messages sent",
        sum(|c| &c.sent),
    );
    metrics::counter(
        out,
        "mgw_sip_retransmissions_absorbed_total",
        "Retransmitted requests answered from their transaction",
        sum(|c| &c.retransmissions),
    );
    metrics::counter(
        out,
        "mgw_sip_transaction_timeouts_total",
        "Transactions that timed out (timers B, F, H)",
        sum(|c| &c.timeouts),
    );
    metrics::gauge(
        out,
        "mgw_sip_transactions",
        "Live SIP transactions",
        sum(|c| &c.transactions),
    );
    let total = |f: fn(&mgw_engine::WorkerStats) -> u64| -> u64 { stats.iter().map(f).sum() };
    metrics::counter(
        out,
        "mgw_udp_rx_datagrams_total",
        "UDP datagrams received",
        total(|s| s.udp_rx_datagrams),
    );
    metrics::counter(
        out,
        "mgw_udp_tx_datagrams_total",
        "UDP datagrams sent",
        total(|s| s.udp_tx_datagrams),
    );
    metrics::counter(
        out,
        "mgw_tcp_rx_messages_total",
        "Framed TCP messages received",
        total(|s| s.tcp_rx_messages),
    );
    metrics::gauge(
        out,
        "mgw_tcp_connections",
        "Open TCP connections",
        total(|s| s.tcp_open),
    );
    metrics::counter(
        out,
        "mgw_io_drops_no_buffer_total",
        "Receives dropped for lack of a buffer",
        total(|s| s.drops_no_buffer),
    );
    metrics::counter(
        out,
        "mgw_io_send_errors_total",
        "Sends that failed",
        total(|s| s.send_errors),
    );
    metrics::counter(
        out,
        "mgw_handler_panics_total",
        "Panics caught around protocol handlers",
        total(|s| s.handler_panics),
    );
}

/// Names the listener that could not be bound, as the config key the user must change.
fn bind_error(config: &Config, err: mgw_engine::EngineError) -> String {
    if let mgw_engine::EngineError::Bind { listen, source } = err {
        let index = config.sip.listen.iter().position(|l| l.addr == listen.addr);
        return ConfigError::Bind {
            key: format!("sip.listen[{}]", index.unwrap_or(0)),
            value: listen.to_string(),
            error: source,
        }
        .to_string();
    }
    format!("sip: {err}")
}

/// The nonce MAC key: fresh randomness per start (a restart merely makes nonces stale).
fn random_key() -> std::io::Result<[u8; 32]> {
    use std::io::Read as _;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// The media engine: one relay worker per core, ng control on worker 0.
fn start_media(
    config: &Config,
    counters: Arc<Vec<Arc<MediaCounters>>>,
) -> Result<(mgw_engine::MediaHandle, MediaControl), String> {
    let inactive = Arc::new(std::sync::OnceLock::new());
    let listener = inactive.clone();
    let workers = config.engine.workers.max(1);
    let media_cfg = config.media.clone();
    let engine_cfg = mgw_engine::MediaConfig {
        workers,
        backend: match config.engine.backend {
            config::Backend::Auto => mgw_engine::Backend::Auto,
            config::Backend::IoUring => mgw_engine::Backend::IoUring,
            config::Backend::Epoll => mgw_engine::Backend::Epoll,
        },
        bind_ip: config.media.bind,
        control: config.media.ng_listen,
        ..mgw_engine::MediaConfig::default()
    };
    mgw_engine::MediaEngine::start(engine_cfg, move |worker| {
        MediaWorker::new(
            &media_cfg,
            worker,
            workers,
            counters[worker % counters.len()].clone(),
            listener.clone(),
            Instant::now(),
        )
    })
    .map(|handle| {
        let mailboxes = (0..handle.workers()).map(|w| handle.mailbox(w)).collect();
        (handle, MediaControl::new(mailboxes, inactive))
    })
    .map_err(|e| match (e, config.media.ng_listen) {
        (mgw_engine::EngineError::Bind { source, .. }, Some(ng)) => ConfigError::Bind {
            key: "media.ng_listen".into(),
            value: ng.to_string(),
            error: source,
        }
        .to_string(),
        (e, _) => format!("media: {e}"),
    })
}

fn render_media_metrics(
    out: &mut String,
    counters: &[Arc<MediaCounters>],
    stats: &[mgw_engine::MediaStats],
) {
    let sum = |f: fn(&MediaCounters) -> &std::sync::atomic::AtomicU64| -> u64 {
        counters.iter().map(|c| f(c).load(Ordering::Relaxed)).sum()
    };
    metrics::gauge(
        out,
        "mgw_media_sessions",
        "Relayed media sessions",
        sum(|c| &c.sessions),
    );
    metrics::gauge(
        out,
        "mgw_media_port_pairs_in_use",
        "RTP/RTCP port pairs allocated",
        sum(|c| &c.ports_in_use),
    );
    metrics::counter(
        out,
        "mgw_media_inactive_total",
        "Sessions reported silent",
        sum(|c| &c.inactive_events),
    );
    let total = |f: fn(&mgw_engine::MediaStats) -> u64| -> u64 { stats.iter().map(f).sum() };
    metrics::counter(
        out,
        "mgw_media_rx_packets_total",
        "Media datagrams received",
        total(|s| s.rx_packets),
    );
    metrics::counter(
        out,
        "mgw_media_tx_packets_total",
        "Media datagrams sent",
        total(|s| s.tx_packets),
    );
}

fn registrar_config(r: &config::RegistrarConfig) -> RegistrarConfig {
    RegistrarConfig {
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        max_contacts: r.max_contacts,
        expiry_spread_pct: r.expiry_spread_pct,
        ..RegistrarConfig::default()
    }
}

/// The address a bound listener is reached at: itself, or for an unspecified one the
/// advertised SIP address's host with the listener's port.
fn advertised(config: &Config, bound: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    config
        .sip_advertised()
        .parse::<SocketAddr>()
        .map(|a| SocketAddr::new(a.ip(), bound.port()))
        .unwrap_or(bound)
}
