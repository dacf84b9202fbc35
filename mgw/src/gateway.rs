//! The gateway proper: SIP engine, registrar, call switch, RTP relay.
//!
//! `mgw serve` calls [`run_gateway`] after the config is loaded, the store directory exists and
//! the admin server listens, and marks the process ready (`/health` 200) as soon as it returns
//! `Ok`. So `run_gateway` returns only once every SIP listener is bound, and fails with one line
//! naming the key when one cannot be.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mgw_core::auth::NonceKey;
use mgw_core::endpoint::EndpointConfig;
use mgw_core::transaction::TimerConfig;
use mgw_engine::{Engine, EngineHandle, ListenAddr};

use crate::admin::{metrics, AdminHandle};
use crate::config::{self, Config, ConfigError};
use crate::signalling::{SipCounters, SipWorker};

/// How long a digest nonce stays fresh before `stale=true` (RFC 7616 section 3.3).
const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// The engine, shared with the metrics renderer on the admin thread until shutdown takes it.
type SharedEngine = Arc<Mutex<Option<EngineHandle>>>;

/// The running gateway; [`GatewayHandle::shutdown`] stops it.
pub struct GatewayHandle {
    engine: SharedEngine,
    backend: String,
    listeners: Vec<ListenAddr>,
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

    /// The bound SIP listeners (port 0 resolved).
    pub fn sip_listeners(&self) -> &[ListenAddr] {
        &self.listeners
    }

    /// Stops the workers and joins them. Called once, on SIGTERM/SIGINT, after `/health` has
    /// turned 503.
    pub fn shutdown(self) -> Result<(), String> {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(e) = engine {
            e.shutdown();
        }
        Ok(())
    }
}

/// Starts the gateway described by `config`; `admin` receives its metrics and API routes.
pub fn run_gateway(config: &Config, admin: &AdminHandle) -> Result<GatewayHandle, String> {
    let endpoint_cfg = EndpointConfig {
        domain: config.sip.domain.clone(),
        server: config.sip.user_agent.clone(),
        nonce_lifetime: NONCE_LIFETIME,
        nonce_key: NonceKey::new(random_key().map_err(|e| format!("reading /dev/urandom: {e}"))?),
        epoch: Instant::now(),
        timers: TimerConfig {
            t1: config.sip.t1(),
            t2: config.sip.t2(),
            t4: config.sip.t4(),
            ..TimerConfig::default()
        },
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
    let engine = Engine::start(engine_cfg, move |worker| {
        SipWorker::new(
            endpoint_cfg.clone(),
            per_worker[worker % per_worker.len()].clone(),
        )
    })
    .map_err(|e| bind_error(config, e))?;
    log::info!(
        "SIP engine: {} worker(s), {} backend",
        engine.workers(),
        engine.backend()
    );
    let handle = GatewayHandle {
        backend: engine.backend().to_string(),
        listeners: engine.local_addrs(),
        engine: Arc::new(Mutex::new(Some(engine))),
    };
    let shared = handle.engine.clone();
    admin.add_metrics(move |out: &mut String| {
        let stats = shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(EngineHandle::stats)
            .unwrap_or_default();
        render_metrics(out, &counters, &stats)
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
