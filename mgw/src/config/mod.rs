//! mgw configuration: the TOML file's structure, its defaults and its
//! validation.
//!
//! Loading is three steps so that each can be tested on its own:
//! [`Config::from_toml_str`] parses and validates text (no file system, no
//! environment), [`Config::apply_env`] applies environment overrides, and
//! [`Config::check_files`] checks the files the config names. [`Config::load`]
//! does all three, as `mgw serve` and `mgw config check` need.
//!
//! Every section and key has a default (see `default.toml` and
//! docs/configuration.md), so an empty file is a valid config. Unknown keys
//! are errors everywhere: a misspelt key silently ignored is a misconfigured
//! PBX.

mod error;
mod values;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use values::{HostPort, Listener, PortRange, Transport, DEFAULT_SIP_PORT};

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default configuration (`mgw/src/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Admin token of the default config; mgw warns while it is in use.
pub const DEFAULT_ADMIN_TOKEN: &str = "change-me";

/// Environment variable that overrides `engine.backend`, so one test suite can
/// run on both I/O backends.
pub const ENV_IO_BACKEND: &str = "MGW_IO_BACKEND";

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub sip: SipConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub registrar: RegistrarConfig,
    pub licences: LicencesConfig,
    pub accounts: AccountsConfig,
    pub emergency: EmergencyConfig,
    pub calls: CallsConfig,
    pub media: MediaConfig,
    /// `[[isdn]]` sections.
    pub isdn: Vec<IsdnConfig>,
    /// `[[dect]]` sections.
    pub dect: Vec<DectConfig>,
    /// `[[trunk]]` sections.
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkConfig>,
    pub phonebook: PhonebookConfig,
    pub log: LogConfig,
}

/// `[engine]`: the I/O engine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// I/O worker threads. Default: one per CPU.
    pub workers: usize,
    /// Default: `auto` (io_uring where the kernel allows it, else epoll).
    pub backend: Backend,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            backend: Backend::Auto,
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Auto,
    IoUring,
    Epoll,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }

    fn parse(s: &str) -> Option<Backend> {
        match s {
            "auto" => Some(Backend::Auto),
            "io_uring" => Some(Backend::IoUring),
            "epoll" => Some(Backend::Epoll),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[sip]`: SIP listeners, domain and protocol timers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Default: `["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]`.
    pub listen: Vec<Listener>,
    /// Digest realm and home domain. Default: `"mgw.local"`.
    pub domain: String,
    /// RFC 3261 T1 (RTT estimate), ms. Default 500.
    pub t1_ms: u64,
    /// RFC 3261 T2 (maximum retransmit interval), ms. Default 4000.
    pub t2_ms: u64,
    /// RFC 3261 T4 (maximum message lifetime in the network), ms. Default 5000.
    pub t4_ms: u64,
    /// Idle SIP TCP connections are closed after this many seconds. Default 600.
    pub tcp_idle_timeout_s: u64,
    /// Cap on concurrent SIP TCP connections. Default 4096.
    pub tcp_max_connections: usize,
    /// User-Agent / Server header. Default `"mgw/<version>"`.
    pub user_agent: String,
    /// `host:port` mgw writes into the Via and Contact of requests it sends (calls to phones).
    /// Default: the first UDP listener's address, 127.0.0.1 when it listens on all addresses
    /// (set it to the host's LAN address in a deployment).
    pub advertise: Option<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec![
                Listener {
                    transport: Transport::Udp,
                    addr: SocketAddr::from(([0, 0, 0, 0], DEFAULT_SIP_PORT)),
                },
                Listener {
                    transport: Transport::Tcp,
                    addr: SocketAddr::from(([0, 0, 0, 0], DEFAULT_SIP_PORT)),
                },
            ],
            domain: "mgw.local".to_string(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            tcp_idle_timeout_s: 600,
            tcp_max_connections: 4096,
            user_agent: default_user_agent(),
            advertise: None,
        }
    }
}

pub fn default_user_agent() -> String {
    format!("mgw/{}", env!("CARGO_PKG_VERSION"))
}

impl SipConfig {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
    pub fn tcp_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.tcp_idle_timeout_s)
    }
}

/// `[admin]`: the admin HTTP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Default `127.0.0.1:8080`.
    #[serde(deserialize_with = "values::socket_addr")]
    pub listen: SocketAddr,
    /// Bearer token with the admin role. Default `"change-me"` (warned about).
    pub token: String,
    /// Bearer token with the accounting role (read everything; create, change, enable, disable
    /// and delete accounts and their numbers). Default: none.
    pub accounting_token: Option<String>,
    /// Bearer token with the viewer role (read only). Default: none.
    pub viewer_token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: DEFAULT_ADMIN_TOKEN.to_string(),
            accounting_token: None,
            viewer_token: None,
        }
    }
}

impl AdminConfig {
    pub fn uses_default_token(&self) -> bool {
        self.token == DEFAULT_ADMIN_TOKEN
    }
}

/// `[store]`: persistent state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory holding all persistent state, relative to the working
    /// directory unless absolute. Default `"./mgw-data"`.
    pub dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("./mgw-data"),
        }
    }
}

/// `[registrar]`: how REGISTER is answered and when bindings expire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shorter requested expiries get 423 Interval Too Brief. Default 60 s.
    pub min_expires: u32,
    /// Longer requested expiries are shortened to this. Default 3600 s.
    pub max_expires: u32,
    /// Expiry when the phone asks for none. Default 3600 s.
    pub default_expires: u32,
    /// Bindings per log-on; a new one beyond it replaces the least recently refreshed.
    /// Default 10.
    pub max_contacts: usize,
    /// Grant up to this many percent less than asked (per phone), so phones that registered
    /// together do not all refresh together. Default 0.
    pub expiry_spread_pct: u8,
    /// How long a digest nonce stays fresh before `stale=true`. Default 300 s.
    pub nonce_lifetime_s: u64,
    /// Offer the SHA-256 digest challenge before the MD5 one. Both are always offered; many
    /// phones (and SIPp) take the first and cannot do SHA-256, so the default is false.
    pub sha256_first: bool,
    /// User-Agent prefixes (case-insensitive) that are challenged with MD5 only, because they
    /// fail on a challenge they cannot answer instead of skipping it. Default: Debian's
    /// baresip 1.x (libre returns ENOSYS on a SHA-256 challenge).
    pub md5_only_user_agents: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
            expiry_spread_pct: 0,
            nonce_lifetime_s: 300,
            sha256_first: false,
            md5_only_user_agents: vec!["baresip v0.".into(), "baresip v1.".into()],
        }
    }
}

/// `[licences]`: floating SIP licences.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicencesConfig {
    /// Number of floating SIP licences. Default 10.
    pub total: u32,
}

impl Default for LicencesConfig {
    fn default() -> Self {
        LicencesConfig { total: 10 }
    }
}

/// `[accounts]`: where SIP accounts come from.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// CSV with header `user,password,number[,channels]`, imported at start.
    /// Default: none.
    pub import_csv: Option<PathBuf>,
}

/// `[emergency]`: numbers callable without a licence.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmergencyConfig {
    /// Default `["110", "112", "911", "999"]`.
    pub numbers: Vec<String>,
    /// SIP URI emergency calls are sent to. Default: none (routed like any
    /// other number, but without needing a licence).
    pub route: Option<String>,
    /// The `[[isdn]]` line or `[[trunk]]` emergency calls leave by, with the number as
    /// dialled (the PSTN reaches the PSAP). Default: none. Exclusive with `route`.
    pub trunk: Option<String>,
}

impl Default for EmergencyConfig {
    fn default() -> Self {
        EmergencyConfig {
            numbers: mgw_core::admission::DEFAULT_EMERGENCY
                .iter()
                .map(|n| n.to_string())
                .collect(),
            route: None,
            trunk: None,
        }
    }
}

/// `[media]`: RTP relay.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Default `"30000-39999"`.
    pub rtp_ports: PortRange,
    /// rtpengine NG control protocol listener (UDP). Default: none.
    #[serde(deserialize_with = "values::opt_socket_addr")]
    pub ng_listen: Option<SocketAddr>,
    /// Address the RTP/RTCP sockets bind to. Default `"0.0.0.0"`.
    pub bind: std::net::IpAddr,
    /// Address written into SDP for peers to send media to. Default: `bind`, or 127.0.0.1
    /// when `bind` is the wildcard (set it to the host's LAN address in a deployment).
    pub advertise: Option<std::net::IpAddr>,
    /// Seconds without media either way before signalling is told the call is dead.
    /// Default 60.
    pub inactivity_s: u64,
    /// Opus encoder complexity for transcoded streams, 0 (cheapest) to 10. Default 5.
    pub opus_complexity: u8,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: PortRange {
                first: 30000,
                last: 39999,
            },
            ng_listen: None,
            bind: std::net::IpAddr::from([0, 0, 0, 0]),
            advertise: None,
            inactivity_s: 60,
            opus_complexity: 5,
        }
    }
}

impl MediaConfig {
    /// The address written into SDP.
    pub fn advertised(&self) -> std::net::IpAddr {
        match self.advertise {
            Some(a) => a,
            None if self.bind.is_unspecified() => primary_address(),
            None => self.bind,
        }
    }
}

/// `[[isdn]]`: one ISDN line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsdnConfig {
    /// Required, unique among `[[isdn]]`.
    pub name: String,
    /// Required.
    pub kind: IsdnKind,
    /// Default false.
    #[serde(default)]
    pub simulated: bool,
    /// Dial prefix routing calls out of this line. Default: none.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Seed of the simulated line and exchange: the same seed replays the same timings.
    /// Default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Q.931 T309: how long calls survive a signalling link failure before they are
    /// cleared (0: cleared at once). Default 90.
    #[serde(default = "default_t309")]
    pub t309_s: u64,
}

fn default_t309() -> u64 {
    90
}

fn default_seed() -> u64 {
    1
}

fn default_true() -> bool {
    true
}

fn default_dect_channels() -> u32 {
    4
}

fn default_answer_after_ms() -> u32 {
    1000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IsdnKind {
    #[serde(rename = "e1-pri")]
    E1Pri,
    #[serde(rename = "t1-pri")]
    T1Pri,
    #[serde(rename = "bri")]
    Bri,
}

impl IsdnKind {
    /// Bearer (B) channels the interface carries.
    pub fn b_channels(self) -> u32 {
        match self {
            IsdnKind::E1Pri => 30,
            IsdnKind::T1Pri => 23,
            IsdnKind::Bri => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IsdnKind::E1Pri => "e1-pri",
            IsdnKind::T1Pri => "t1-pri",
            IsdnKind::Bri => "bri",
        }
    }
}

/// `[[dect]]`: one DECT base station.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DectConfig {
    /// Required, unique among `[[dect]]`.
    pub name: String,
    /// Default false.
    #[serde(default)]
    pub simulated: bool,
    /// Default: none.
    #[serde(default)]
    pub handsets: Vec<Handset>,
    /// Simultaneous voice channels of the base station. Default 4.
    #[serde(default = "default_dect_channels")]
    pub channels: u32,
    /// The base carries G.722 wideband audio to handsets that can (CAT-iq); otherwise
    /// G.726-32. Default true.
    #[serde(default = "default_true")]
    pub wideband: bool,
    /// Seed of the simulation (clock offsets, paging delays). Default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handset {
    /// IPUI-N: 10 hex digits, e.g. `"00077A1B2C"`.
    pub ipui: String,
    /// Extension number the handset answers.
    pub number: String,
    /// Display name. Default: "Handset NUMBER".
    #[serde(default)]
    pub name: Option<String>,
    /// The simulated person answers incoming calls by themselves. Default true.
    #[serde(default = "default_true")]
    pub auto_answer: bool,
    /// ... after this long of ringing (one ring). Default 1000.
    #[serde(default = "default_answer_after_ms")]
    pub answer_after_ms: u32,
    /// What the handset sends once connected: "echo" (what it hears), "tone:HZ", "silence".
    /// Default "echo".
    #[serde(default)]
    pub audio: Option<String>,
}

/// `[[trunk]]`: one upstream SIP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Required, unique among `[[trunk]]`.
    pub name: String,
    /// Required: `"host[:port]"`, `"[IPV6][:port]"`; port default 5060.
    pub server: HostPort,
    /// Default `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// Send REGISTER to the server. Default false.
    #[serde(default)]
    pub register: bool,
    /// Address-of-record to register. Default: `sip:USER@SERVER-HOST`.
    #[serde(default)]
    pub address: Option<String>,
    /// Digest user. Default: none.
    #[serde(default)]
    pub user: Option<String>,
    /// Digest password. Default: none.
    #[serde(default)]
    pub password: Option<String>,
    /// Requested registration lifetime, seconds. Default 1200 (seed 004).
    #[serde(default = "default_trunk_expires")]
    pub expires: u32,
    /// Dial prefix routing calls out of this trunk (stripped). Default: none.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Simultaneous calls through this trunk, both directions. Default: unlimited.
    #[serde(default)]
    pub max_calls: Option<u32>,
    /// Send REGISTER and calls through this proxy instead of `server`. Default: none.
    #[serde(default)]
    pub outbound_proxy: Option<HostPort>,
}

fn default_trunk_expires() -> u32 {
    1200
}

impl TrunkConfig {
    /// The address-of-record to register: `address`, else
    /// `sip:USER@SERVER-HOST`, else `None` when neither is configured.
    pub fn aor(&self) -> Option<String> {
        if let Some(a) = &self.address {
            return Some(a.clone());
        }
        let user = self.user.as_deref()?;
        if self.server.host.contains(':') {
            Some(format!("sip:{user}@[{}]", self.server.host))
        } else {
            Some(format!("sip:{user}@{}", self.server.host))
        }
    }
}

/// `[calls]`: the call switch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Ringing this long without an answer ends the attempt with 480. Default 120.
    pub no_answer_s: u64,
    /// RFC 4028 session interval granted to callers that support timers and ask for none.
    /// Default 1800.
    pub session_expires_s: u64,
    /// Smallest session interval accepted (`Min-SE`); less is answered 422. Default 90.
    pub min_se_s: u64,
    /// `[[calls.normalize]]`: the first rule whose `strip` starts the dialled number replaces
    /// it with `prepend`. Default: none.
    pub normalize: Vec<NormalizeRule>,
    /// `[[calls.rule]]`: ordered dial-plan rules; the first whose prefix matches decides.
    /// Numbers no rule claims ring the subscribers of that number. Default: none.
    pub rule: Vec<DialRule>,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            no_answer_s: 120,
            session_expires_s: 1800,
            min_se_s: 90,
            normalize: Vec::new(),
            rule: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeRule {
    pub strip: String,
    #[serde(default)]
    pub prepend: String,
}

/// One dial-plan rule: `prefix`, and one of `uri`, `trunk`, `reject` (a status), or
/// `local = true`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialRule {
    pub prefix: String,
    /// Remove the prefix before routing. Default false.
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub local: bool,
    pub uri: Option<String>,
    pub trunk: Option<String>,
    /// Digits put before the number sent to the trunk.
    #[serde(default)]
    pub prepend: String,
    pub reject: Option<u16>,
    /// Reason phrase of a rejection. Default: the status's standard phrase.
    pub reason: Option<String>,
}

/// `[phonebook]`: short numbers for remote SIP addresses.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhonebookConfig {
    /// Dial prefix that selects the phonebook (`PREFIX` + entry). Default: none.
    pub prefix: Option<String>,
    /// Short number -> SIP URI. Default: empty.
    pub entries: BTreeMap<String, String>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Default `info`. `RUST_LOG` overrides.
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

impl Config {
    /// Parses and validates TOML text. Touches neither the file system nor
    /// the environment.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| error::from_syntax(&e, text))?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(error::from_serde)?;
        config.validate()?;
        Ok(config)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::from_toml_str(DEFAULT_TOML)
    }

    /// What `mgw serve` runs on: the file at `path` (or the embedded default),
    /// with environment overrides applied and the files it names checked.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: path.to_path_buf(),
                    error,
                })?;
                Config::from_toml_str(&text)?
            }
            None => Config::embedded_default()?,
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check_files()?;
        Ok(config)
    }

    /// Applies environment overrides; `lookup` is `std::env::var` outside
    /// tests. Only `MGW_IO_BACKEND` for now (tests run on both backends).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(value) = lookup(ENV_IO_BACKEND).filter(|v| !v.is_empty()) {
            self.engine.backend = Backend::parse(&value).ok_or_else(|| {
                ConfigError::invalid(
                    format!("environment {ENV_IO_BACKEND}"),
                    &value,
                    "expected auto, io_uring or epoll; unset it to use [engine] backend",
                )
            })?;
        }
        Ok(())
    }

    /// Checks that the files the config names can be read.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.accounts.import_csv {
            if let Err(error) = std::fs::File::open(path) {
                return Err(ConfigError::File {
                    key: "accounts.import_csv".to_string(),
                    path: path.clone(),
                    error,
                });
            }
            if path.is_dir() {
                return Err(ConfigError::File {
                    key: "accounts.import_csv".to_string(),
                    path: path.clone(),
                    error: std::io::Error::other("is a directory"),
                });
            }
        }
        Ok(())
    }

    /// Creates `store.dir` if missing and checks that it is writable.
    pub fn prepare_store_dir(&self) -> Result<(), ConfigError> {
        let dir = &self.store.dir;
        let err = |error| ConfigError::Store {
            path: dir.clone(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        // Permission bits don't tell (root, read-only mounts, ACLs): try it.
        let probe = dir.join(format!(".mgw-write-test-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(err)?;
        std::fs::remove_file(&probe).map_err(err)?;
        Ok(())
    }

    /// Semantic checks that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_engine()?;
        self.validate_calls()?;
        self.validate_sip()?;
        self.validate_admin()?;
        if self.store.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "store.dir",
                "",
                "must not be empty; e.g. \"./mgw-data\"",
            ));
        }
        if let Some(p) = &self.accounts.import_csv {
            if p.as_os_str().is_empty() {
                return Err(ConfigError::invalid(
                    "accounts.import_csv",
                    "",
                    "must not be empty; remove the key to import no accounts",
                ));
            }
        }
        self.validate_registrar()?;
        if self.licences.total as usize > mgw_core::licence::MAX_LICENCES {
            return Err(ConfigError::invalid(
                "licences.total",
                self.licences.total,
                format!("must be at most {}", mgw_core::licence::MAX_LICENCES),
            ));
        }
        self.validate_emergency()?;
        self.validate_media()?;
        let mut prefixes = Prefixes::default();
        self.validate_isdn(&mut prefixes)?;
        self.validate_dect()?;
        self.validate_trunks(&mut prefixes)?;
        self.validate_phonebook(&mut prefixes)?;
        self.validate_simulated()?;
        self.validate_peer_names()?;
        Ok(())
    }

    /// Lines and trunks are all peers of the switch, found by name by dial-plan rules: one
    /// name may not serve two of them.
    fn validate_peer_names(&self) -> Result<(), ConfigError> {
        let mut seen: HashMap<&str, String> = HashMap::new();
        let all = self
            .isdn
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), format!("isdn[{i}].name")))
            .chain(
                self.dect
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.name.as_str(), format!("dect[{i}].name"))),
            )
            .chain(
                self.trunks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.name.as_str(), format!("trunk[{i}].name"))),
            );
        for (name, key) in all {
            if let Some(other) = seen.insert(name, key.clone()) {
                return Err(ConfigError::invalid(
                    key,
                    name,
                    format!(
                        "is also the name of {other}; lines and trunks need names of their own"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Only simulated lines exist here; checked after everything else about the sections,
    /// which says more about a section written wrong.
    fn validate_simulated(&self) -> Result<(), ConfigError> {
        // What the DECT driver itself checks (numbers, answer delays, base names), so that
        // `mgw config check` finds it rather than the start; handset numbers are unique
        // across bases too, since the switch routes them.
        let mut numbers: HashMap<&str, usize> = HashMap::new();
        for (i, d) in self.dect.iter().enumerate() {
            if let Err(e) = crate::lines::dect_config(d).validate() {
                return Err(ConfigError::invalid(
                    format!("dect[{i}]"),
                    &d.name,
                    e.to_string(),
                ));
            }
            for h in &d.handsets {
                if let Some(other) = numbers.insert(&h.number, i) {
                    return Err(ConfigError::invalid(
                        format!("dect[{i}].handsets"),
                        &h.number,
                        format!(
                            "is also a handset number of dect[{other}]; numbers must be unique"
                        ),
                    ));
                }
            }
        }
        for (i, line) in self.isdn.iter().enumerate() {
            if !line.simulated {
                return Err(ConfigError::invalid(
                    format!("isdn[{i}].simulated"),
                    "false",
                    "no ISDN interface hardware is supported on this machine; set simulated = true",
                ));
            }
        }
        for (i, base) in self.dect.iter().enumerate() {
            if !base.simulated {
                return Err(ConfigError::invalid(
                    format!("dect[{i}].simulated"),
                    "false",
                    "no DECT base station hardware is supported on this machine; set simulated = true",
                ));
            }
        }
        Ok(())
    }

    fn validate_calls(&self) -> Result<(), ConfigError> {
        if self.calls.no_answer_s == 0 {
            return Err(ConfigError::invalid(
                "calls.no_answer_s",
                0,
                "must be at least 1 (seconds of ringing before 480)",
            ));
        }
        if self.calls.min_se_s < 90 || self.calls.session_expires_s < self.calls.min_se_s {
            return Err(ConfigError::invalid(
                "calls.min_se_s",
                self.calls.min_se_s,
                format!(
                    "must be at least 90 (RFC 4028) and at most calls.session_expires_s ({})",
                    self.calls.session_expires_s
                ),
            ));
        }
        for (i, r) in self.calls.rule.iter().enumerate() {
            let targets = usize::from(r.local)
                + usize::from(r.uri.is_some())
                + usize::from(r.trunk.is_some())
                + usize::from(r.reject.is_some());
            if targets != 1 {
                return Err(ConfigError::invalid(
                    format!("calls.rule[{i}]"),
                    &r.prefix,
                    "needs exactly one of local = true, uri, trunk or reject",
                ));
            }
            if let Some(s) = r.reject {
                if !(400..=699).contains(&s) {
                    return Err(ConfigError::invalid(
                        format!("calls.rule[{i}].reject"),
                        s,
                        "must be a SIP failure status, 400 to 699",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The dial plan the call switch runs, from `[calls]` and `[emergency]`.
    pub fn dial_plan(&self) -> mgw_core::call::dialplan::DialPlan {
        use mgw_core::call::dialplan::{DialPlan, Normalize, Rule, Target};
        let target = |r: &DialRule| {
            if let Some(u) = &r.uri {
                Target::Uri(u.clone())
            } else if let Some(t) = &r.trunk {
                Target::Trunk {
                    name: t.clone(),
                    prepend: r.prepend.clone(),
                }
            } else if let Some(status) = r.reject {
                Target::Reject {
                    status,
                    reason: r
                        .reason
                        .clone()
                        .unwrap_or_else(|| mgw_core::call::default_reason(status).to_string()),
                }
            } else {
                Target::Local
            }
        };
        DialPlan {
            normalize: self
                .calls
                .normalize
                .iter()
                .map(|n| Normalize {
                    strip: n.strip.clone(),
                    prepend: n.prepend.clone(),
                })
                .collect(),
            // The explicit rules first; then each line's dial prefix, stripped (`0` + PSTN
            // number on an ISDN line).
            rules: self
                .calls
                .rule
                .iter()
                .map(|r| Rule {
                    prefix: r.prefix.clone(),
                    strip_prefix: r.strip_prefix,
                    target: target(r),
                })
                .chain(self.isdn.iter().filter_map(|l| {
                    l.prefix.as_ref().map(|p| Rule {
                        prefix: p.clone(),
                        strip_prefix: true,
                        target: Target::Trunk {
                            name: l.name.clone(),
                            prepend: String::new(),
                        },
                    })
                }))
                // The phone book; the trunks' own prefixes come after every rule (they live
                // with the trunks' peers, which the admin API changes at run time).
                .chain(self.phonebook_rules())
                .collect(),
            emergency: match (&self.emergency.route, &self.emergency.trunk) {
                (Some(uri), _) => Some(Target::Uri(uri.clone())),
                (None, Some(name)) => Some(Target::Trunk {
                    name: name.clone(),
                    prepend: String::new(),
                }),
                (None, None) => None,
            },
        }
    }

    /// One rule per phone-book entry: `prefix` + short number -> the stored URI, through
    /// the trunk whose domain the URI names (else the first trunk; with no trunk, directly,
    /// which needs an IP address in the URI).
    fn phonebook_rules(&self) -> Vec<mgw_core::call::dialplan::Rule> {
        use mgw_core::call::dialplan::{Rule, Target};
        let pb = &self.phonebook;
        let Some(prefix) = &pb.prefix else {
            return Vec::new();
        };
        pb.entries
            .iter()
            .map(|(short, uri)| {
                let host = mgw_core::sip::Uri::parse(uri)
                    .ok()
                    .map(|u| u.host.to_ascii_lowercase());
                let trunk = self
                    .trunks
                    .iter()
                    .find(|t| {
                        let aor_host = t.aor().and_then(|a| {
                            mgw_core::sip::Uri::parse(&a)
                                .ok()
                                .map(|u| u.host.to_ascii_lowercase())
                        });
                        host.is_some()
                            && (aor_host == host
                                || Some(t.server.host.to_ascii_lowercase()) == host)
                    })
                    .or(self.trunks.first());
                Rule {
                    prefix: format!("{prefix}{short}"),
                    strip_prefix: true,
                    target: match trunk {
                        Some(t) => Target::TrunkUri {
                            name: t.name.clone(),
                            uri: uri.clone(),
                        },
                        None => Target::Uri(uri.clone()),
                    },
                }
            })
            .collect()
    }

    /// Via and Contact's `host:port`: `sip.advertise`, else the first UDP listener, with the
    /// host's primary address for a wildcard one (phones on the LAN reach it; so do local ones).
    pub fn sip_advertised(&self) -> String {
        if let Some(a) = &self.sip.advertise {
            return a.clone();
        }
        let l = self
            .sip
            .listen
            .iter()
            .find(|l| l.transport == Transport::Udp)
            .or(self.sip.listen.first());
        match l {
            Some(l) if l.addr.ip().is_unspecified() => {
                SocketAddr::new(primary_address(), l.addr.port()).to_string()
            }
            Some(l) => l.addr.to_string(),
            None => format!("127.0.0.1:{DEFAULT_SIP_PORT}"),
        }
    }

    /// Via and Contact towards parties reached over IPv6, when mgw listens on IPv6 and
    /// `sip.advertise` is not set (which then stands for every party): the first IPv6 UDP
    /// listener, with the host's primary IPv6 address for a wildcard one.
    pub fn sip_advertised6(&self) -> Option<String> {
        if self.sip.advertise.is_some() {
            return None;
        }
        let l = self
            .sip
            .listen
            .iter()
            .filter(|l| l.addr.is_ipv6())
            .find(|l| l.transport == Transport::Udp)
            .or_else(|| self.sip.listen.iter().find(|l| l.addr.is_ipv6()))?;
        let ip = if l.addr.ip().is_unspecified() {
            primary_address6()?
        } else {
            l.addr.ip()
        };
        Some(SocketAddr::new(ip, l.addr.port()).to_string())
    }

    fn validate_registrar(&self) -> Result<(), ConfigError> {
        let r = &self.registrar;
        if r.min_expires == 0 || r.min_expires > r.max_expires {
            return Err(ConfigError::invalid(
                "registrar.min_expires",
                r.min_expires,
                format!("must be 1 to registrar.max_expires ({})", r.max_expires),
            ));
        }
        if !(r.min_expires..=r.max_expires).contains(&r.default_expires) {
            return Err(ConfigError::invalid(
                "registrar.default_expires",
                r.default_expires,
                "must lie between registrar.min_expires and registrar.max_expires",
            ));
        }
        if r.max_contacts == 0 {
            return Err(ConfigError::invalid(
                "registrar.max_contacts",
                0,
                "must be at least 1",
            ));
        }
        if r.expiry_spread_pct > 50 {
            return Err(ConfigError::invalid(
                "registrar.expiry_spread_pct",
                r.expiry_spread_pct,
                "must be 0-50 (percent of the requested expiry)",
            ));
        }
        if r.nonce_lifetime_s < 10 {
            return Err(ConfigError::invalid(
                "registrar.nonce_lifetime_s",
                r.nonce_lifetime_s,
                "must be at least 10 seconds",
            ));
        }
        Ok(())
    }

    fn validate_engine(&self) -> Result<(), ConfigError> {
        let w = self.engine.workers;
        if !(1..=1024).contains(&w) {
            return Err(ConfigError::invalid(
                "engine.workers",
                w,
                "must be 1-1024; remove the key for one worker per CPU",
            ));
        }
        Ok(())
    }

    fn validate_sip(&self) -> Result<(), ConfigError> {
        let sip = &self.sip;
        if sip.listen.is_empty() {
            return Err(ConfigError::Invalid {
                key: "sip.listen".to_string(),
                value: Some("[]".to_string()),
                message: "needs at least one listener, e.g. [\"udp:0.0.0.0:5060\"]".to_string(),
            });
        }
        let mut seen = HashSet::new();
        for (i, l) in sip.listen.iter().enumerate() {
            if !seen.insert(*l) {
                return Err(ConfigError::invalid(
                    format!("sip.listen[{i}]"),
                    l.to_string(),
                    "is listed twice; remove the duplicate",
                ));
            }
        }
        if !values::is_hostname(&sip.domain) {
            return Err(ConfigError::invalid(
                "sip.domain",
                &sip.domain,
                "must be a domain name or IPv4 address (letters, digits, '-', '.'), e.g. \"pbx.example.org\"",
            ));
        }
        if sip.t1_ms == 0 {
            return Err(ConfigError::invalid(
                "sip.t1_ms",
                0,
                "must be above 0; RFC 3261 recommends 500",
            ));
        }
        if sip.t2_ms < sip.t1_ms {
            return Err(ConfigError::invalid(
                "sip.t2_ms",
                sip.t2_ms,
                format!(
                    "must be at least sip.t1_ms ({}); RFC 3261 recommends 4000",
                    sip.t1_ms
                ),
            ));
        }
        if sip.t4_ms == 0 {
            return Err(ConfigError::invalid(
                "sip.t4_ms",
                0,
                "must be above 0; RFC 3261 recommends 5000",
            ));
        }
        if sip.tcp_idle_timeout_s == 0 {
            return Err(ConfigError::invalid(
                "sip.tcp_idle_timeout_s",
                0,
                "must be above 0, e.g. 600",
            ));
        }
        if sip.tcp_max_connections == 0 {
            return Err(ConfigError::invalid(
                "sip.tcp_max_connections",
                0,
                "must be above 0, e.g. 4096; remove tcp listeners to disable TCP",
            ));
        }
        if sip.user_agent.is_empty() || sip.user_agent.bytes().any(|b| b.is_ascii_control()) {
            return Err(ConfigError::invalid(
                "sip.user_agent",
                &sip.user_agent,
                "must be non-empty printable text, e.g. \"mgw\"",
            ));
        }
        Ok(())
    }

    fn validate_admin(&self) -> Result<(), ConfigError> {
        let a = &self.admin;
        let tokens = [
            ("admin.token", Some(&a.token)),
            ("admin.accounting_token", a.accounting_token.as_ref()),
            ("admin.viewer_token", a.viewer_token.as_ref()),
        ];
        for (i, (key, t)) in tokens.iter().enumerate() {
            let Some(t) = t else { continue };
            if t.is_empty()
                || t.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                // Don't echo the token: it is a secret.
                return Err(ConfigError::Invalid {
                    key: key.to_string(),
                    value: None,
                    message: "must be non-empty and contain no spaces or control characters"
                        .to_string(),
                });
            }
            if tokens[..i].iter().any(|(_, o)| *o == Some(*t)) {
                return Err(ConfigError::Invalid {
                    key: key.to_string(),
                    value: None,
                    message: "must differ from the other tokens: a token has one role".to_string(),
                });
            }
        }
        Ok(())
    }

    fn validate_emergency(&self) -> Result<(), ConfigError> {
        for (i, n) in self.emergency.numbers.iter().enumerate() {
            if !values::is_dial_string(n) {
                return Err(ConfigError::invalid(
                    format!("emergency.numbers[{i}]"),
                    n,
                    "must be a dialable number (digits, '*', '#'), e.g. \"112\"",
                ));
            }
        }
        if let Some(route) = &self.emergency.route {
            if !values::is_sip_uri(route) {
                return Err(ConfigError::invalid(
                    "emergency.route",
                    route,
                    "must be a SIP URI starting with sip:, e.g. \"sip:112@192.0.2.10:5060\"",
                ));
            }
        }
        if let Some(name) = &self.emergency.trunk {
            if self.emergency.route.is_some() {
                return Err(ConfigError::invalid(
                    "emergency.trunk",
                    name,
                    "set either emergency.route or emergency.trunk, not both",
                ));
            }
            let known = self
                .isdn
                .iter()
                .map(|l| &l.name)
                .chain(self.trunks.iter().map(|t| &t.name));
            if !known.clone().any(|n| n == name) {
                let names: Vec<&str> = known.map(String::as_str).collect();
                return Err(ConfigError::invalid(
                    "emergency.trunk",
                    name,
                    if names.is_empty() {
                        "names no [[isdn]] line or [[trunk]]: define one, or use emergency.route"
                            .to_string()
                    } else {
                        format!(
                            "must name an [[isdn]] line or a [[trunk]]: {}",
                            names.join(", ")
                        )
                    },
                ));
            }
        }
        Ok(())
    }

    fn validate_media(&self) -> Result<(), ConfigError> {
        if self.media.opus_complexity > 10 {
            return Err(ConfigError::invalid(
                "media.opus_complexity",
                self.media.opus_complexity,
                "must be 0 to 10",
            ));
        }
        if self.media.inactivity_s == 0 {
            return Err(ConfigError::invalid(
                "media.inactivity_s",
                0,
                "must be at least 1 second",
            ));
        }
        if self.media.advertise.is_some_and(|a| a.is_unspecified()) {
            return Err(ConfigError::invalid(
                "media.advertise",
                self.media
                    .advertise
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                "must be an address peers can send to, not the wildcard",
            ));
        }
        if let Some(ng) = self.media.ng_listen {
            if ng.port() == 0 {
                return Err(ConfigError::invalid(
                    "media.ng_listen",
                    ng.to_string(),
                    "needs a fixed port, e.g. \"127.0.0.1:22222\"",
                ));
            }
        }
        Ok(())
    }

    fn validate_isdn(&self, prefixes: &mut Prefixes) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, line) in self.isdn.iter().enumerate() {
            check_name(
                &mut names,
                &format!("isdn[{i}].name"),
                &line.name,
                "[[isdn]]",
            )?;
            if let Some(p) = &line.prefix {
                prefixes.add(format!("isdn[{i}].prefix"), p)?;
            }
        }
        Ok(())
    }

    fn validate_dect(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        let mut ipuis: HashMap<String, String> = HashMap::new();
        for (i, base) in self.dect.iter().enumerate() {
            check_name(
                &mut names,
                &format!("dect[{i}].name"),
                &base.name,
                "[[dect]]",
            )?;
            if base.channels == 0 || base.channels > 12 {
                return Err(ConfigError::invalid(
                    format!("dect[{i}].channels"),
                    base.channels.to_string(),
                    "must be 1..=12 (a DECT base carries at most 12 duplex voice channels)",
                ));
            }
            for (j, h) in base.handsets.iter().enumerate() {
                let key = format!("dect[{i}].handsets[{j}]");
                if let Some(a) = &h.audio {
                    let tone_ok = a
                        .strip_prefix("tone:")
                        .and_then(|hz| hz.parse::<u32>().ok())
                        .is_some_and(|hz| (50..=7000).contains(&hz));
                    if a != "echo" && a != "silence" && !tone_ok {
                        return Err(ConfigError::invalid(
                            format!("{key}.audio"),
                            a,
                            "must be \"echo\", \"silence\" or \"tone:HZ\" (50..7000), e.g. \"tone:1004\"",
                        ));
                    }
                }
                if h.ipui.len() != 10 || !h.ipui.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.ipui"),
                        &h.ipui,
                        "must be an IPUI-N of 10 hex digits, e.g. \"00077A1B2C\"",
                    ));
                }
                if let Some(other) = ipuis.insert(h.ipui.to_ascii_uppercase(), key.clone()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.ipui"),
                        &h.ipui,
                        format!("is already used by {other}; each handset needs its own IPUI"),
                    ));
                }
                if !values::is_dial_string(&h.number) {
                    return Err(ConfigError::invalid(
                        format!("{key}.number"),
                        &h.number,
                        "must be a dialable number (digits, '*', '#'), e.g. \"300\"",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_trunks(&self, prefixes: &mut Prefixes) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            check_name(
                &mut names,
                &format!("trunk[{i}].name"),
                &t.name,
                "[[trunk]]",
            )?;
            if let Some(a) = &t.address {
                if !values::is_sip_uri(a) {
                    return Err(ConfigError::invalid(
                        format!("trunk[{i}].address"),
                        a,
                        "must be a SIP URI starting with sip:, e.g. \"sip:gw@example.org\"",
                    ));
                }
            }
            if t.password.is_some() && t.user.is_none() {
                return Err(ConfigError::Missing {
                    key: format!("trunk[{i}].user"),
                });
            }
            if t.register && t.aor().is_none() {
                return Err(ConfigError::Invalid {
                    key: format!("trunk[{i}].register"),
                    value: Some("true".to_string()),
                    message: "needs address = \"sip:USER@DOMAIN\" or user = \"USER\" to know what to register"
                        .to_string(),
                });
            }
            if t.expires < 60 {
                return Err(ConfigError::invalid(
                    format!("trunk[{i}].expires"),
                    t.expires,
                    "must be at least 60 seconds, e.g. 3600",
                ));
            }
            if let Some(p) = &t.prefix {
                prefixes.add(format!("trunk[{i}].prefix"), p)?;
            }
        }
        Ok(())
    }

    fn validate_phonebook(&self, prefixes: &mut Prefixes) -> Result<(), ConfigError> {
        let pb = &self.phonebook;
        if let Some(p) = &pb.prefix {
            prefixes.add("phonebook.prefix".to_string(), p)?;
        }
        for (number, uri) in &pb.entries {
            let key = format!("phonebook.entries.{number:?}");
            if !values::is_dial_string(number) {
                return Err(ConfigError::invalid(
                    key,
                    number,
                    "the short number must be dialable (digits, '*', '#'), e.g. \"30\"",
                ));
            }
            if !values::is_sip_uri(uri) {
                return Err(ConfigError::invalid(
                    key,
                    uri,
                    "must be a SIP URI starting with sip:, e.g. \"sip:alice@example.org\"",
                ));
            }
        }
        Ok(())
    }
}

fn check_name(
    seen: &mut HashSet<String>,
    key: &str,
    name: &str,
    section: &str,
) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::invalid(
            key,
            name,
            "must be non-empty letters, digits, '-' or '_', e.g. \"up1\"",
        ));
    }
    if !seen.insert(name.to_string()) {
        return Err(ConfigError::invalid(
            key,
            name,
            format!("is used by another {section} section; names must be unique"),
        ));
    }
    Ok(())
}

/// Dial prefixes of all routes, so that two routes cannot claim the same one.
#[derive(Default)]
struct Prefixes(HashMap<String, String>);

impl Prefixes {
    fn add(&mut self, key: String, prefix: &str) -> Result<(), ConfigError> {
        if !values::is_dial_string(prefix) {
            return Err(ConfigError::invalid(
                key,
                prefix,
                "must be dialable (digits, '*', '#'), e.g. \"0\" or \"9#\"",
            ));
        }
        if let Some(other) = self.0.get(prefix) {
            return Err(ConfigError::invalid(
                key,
                prefix,
                format!(
                    "is already the prefix of {}; each route needs its own prefix",
                    other.trim_end_matches(".prefix")
                ),
            ));
        }
        self.0.insert(prefix.to_string(), key);
        Ok(())
    }
}

/// The host's primary IPv4 address: the source address of its default route, as the kernel
/// picks it for a connected UDP socket (no packet is sent). 127.0.0.1 on a host without one.
/// Looked up once: an address that changes later needs `advertise` set.
pub fn primary_address() -> std::net::IpAddr {
    static PRIMARY: std::sync::OnceLock<std::net::IpAddr> = std::sync::OnceLock::new();
    // TEST-NET-2: never a real peer, only a route lookup.
    *PRIMARY.get_or_init(|| {
        route_source("0.0.0.0:0", "198.51.100.1:9")
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
    })
}

/// The host's primary IPv6 address, as [`primary_address`] finds the IPv4 one; `None` on a
/// host without an IPv6 default route.
pub fn primary_address6() -> Option<std::net::IpAddr> {
    static PRIMARY6: std::sync::OnceLock<Option<std::net::IpAddr>> = std::sync::OnceLock::new();
    // 2001:db8::/32 is documentation space: a route lookup only.
    *PRIMARY6
        .get_or_init(|| route_source("[::]:0", "[2001:db8::1]:9").filter(|ip| !ip.is_loopback()))
}

/// The source address the kernel picks for a UDP socket bound to `bind` connected to
/// `probe`: the address of the route there. Connecting a UDP socket sends nothing.
fn route_source(bind: &str, probe: &str) -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(probe).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}
