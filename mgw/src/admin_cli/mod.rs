//! The admin subcommands of the `mgw` binary: `account`, `number`, `logon`, `profile`,
//! `licence`, `registrations` and `cdrs`. Each is one or two calls to the admin HTTP API of a
//! running `mgw serve` (the routes in `provisioning/api.rs`), so the CLI sees exactly what the
//! API enforces and needs no access to the store.
//!
//! Where to connect and with which token: `--api`/`--token`, else `MGW_API`/`MGW_TOKEN`, else
//! `[admin] listen`/`token` of `--config FILE`, else the defaults of `mgw serve`.
//!
//! Passwords (`logon create|update`): `--password P`, or `--password -` for the first line of
//! standard input, or `--password-file FILE` for the first line of a file, so that they need
//! not show in `ps` or the shell history.
//!
//! Output: tables and `key: value` lines for people; with `--json` the API's answer, for
//! scripts. Exit status: 0 success; 1 the API refused or could not be reached (`mgw: ...` on
//! stderr, with the API's fix and blockers); 2 unusable arguments or `--config` file.

pub mod http;
pub mod table;

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::config::{Config, ConfigError, DEFAULT_ADMIN_TOKEN};
use http::{encode, Endpoint};
use table::{key_values, printable, Table};

/// Where the API is when neither options, environment nor config say.
pub const DEFAULT_API: &str = "http://127.0.0.1:8080";
pub const ENV_API: &str = "MGW_API";
pub const ENV_TOKEN: &str = "MGW_TOKEN";

/// Exit status for unusable arguments or `--config` file (as clap and `mgw serve` use).
const EXIT_USAGE: u8 = 2;

/// Options every admin subcommand takes, before or after its own subcommand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ApiOpts {
    /// Admin API of the gateway [default: $MGW_API, else [admin] listen of --config, else http://127.0.0.1:8080]
    #[arg(long, global = true, value_name = "URL")]
    pub api: Option<String>,
    /// Bearer token [default: $MGW_TOKEN, else [admin] token of --config, else "change-me"]
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The gateway's configuration file, read for what --api/--token and the environment leave open
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON answer (pretty-printed) instead of tables, for scripts
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage SIP accounts (through the admin API of a running `mgw serve`)
    Account {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage the pool of call numbers
    Number {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: NumberCommand,
    },
    /// Manage SIP log-ons (the user name and password a phone registers with)
    Logon {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: LogonCommand,
    },
    /// Manage keepalive profiles (bounds of the registration interval)
    Profile {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Show, reset or size the licence pool
    Licence {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: LicenceCommand,
    },
    /// List live registrations, or drop those of a user (`registrations drop USER`)
    #[command(args_conflicts_with_subcommands = true)]
    Registrations {
        #[command(flatten)]
        api: ApiOpts,
        /// Only this log-on's registrations
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        #[command(subcommand)]
        command: Option<RegistrationsCommand>,
    },
    /// List call records, newest first
    Cdrs {
        #[command(flatten)]
        api: ApiOpts,
        /// At most this many records (1-10000) [default: 100]
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Only calls from this number
        #[arg(long, value_name = "NUMBER")]
        caller: Option<String>,
        /// Only calls to this number
        #[arg(long, value_name = "NUMBER")]
        callee: Option<String>,
        /// Only calls with this final status (200: answered)
        #[arg(long, value_name = "CODE")]
        status: Option<u16>,
    },
    /// List calls in progress
    Calls {
        #[command(flatten)]
        api: ApiOpts,
    },
    /// Upstream SIP trunks: list them, register or unregister one by hand
    Trunk {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: TrunkCommand,
    },
    /// Line drivers (ISDN lines, DECT base stations): list them, act on simulated hardware
    Driver {
        #[command(flatten)]
        api: ApiOpts,
        #[command(subcommand)]
        command: DriverCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrunkCommand {
    /// Every trunk with its registration state and, when not registered, why
    List,
    /// Register now (again after a failure or a disconnect)
    Connect { name: String },
    /// Unregister (REGISTER with expires=0) and stay so until connected
    Disconnect { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DriverCommand {
    /// Every line driver: kind, state, channels in use, numbers served
    List,
    /// A far-end party dials: `mgw driver dial pri1 --from 0301234567 --to 200`
    Dial {
        driver: String,
        /// The calling party (a PSTN number, a handset's number or IPUI)
        #[arg(long)]
        from: String,
        /// The number dialled
        #[arg(long)]
        to: String,
    },
    /// The far-end party answers
    Answer { driver: String, party: String },
    /// The far-end party hangs up
    Hangup { driver: String, party: String },
    /// Cut (`down`) or restore (`up`) layer 1 of an ISDN line
    Layer1 { driver: String, state: UpDown },
    /// Cut or restore the signalling link (D channel)
    Signalling { driver: String, state: UpDown },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpDown {
    Up,
    Down,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List every account
    List,
    /// Show one account
    Show {
        /// Account id or name
        account: String,
    },
    /// Create an account; it is pending until enabled
    Create {
        #[arg(long)]
        name: String,
        /// Its main number: must be free; bound to the account until the account is deleted
        #[arg(long, value_name = "NUMBER")]
        main_number: String,
        /// Voice channels [default: unlimited]
        #[arg(long, value_name = "N")]
        channels: Option<u32>,
        /// [default: metered]
        #[arg(long, value_parser = ["flat", "metered"])]
        tariff: Option<String>,
        /// Network phones may register from (repeatable, or comma-separated) [default: any]
        #[arg(long = "network", value_name = "CIDR", value_delimiter = ',')]
        networks: Vec<String>,
    },
    /// Change an account; what is not given stays
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Update {
        /// Account id or name
        account: String,
        #[arg(long, group = "change")]
        name: Option<String>,
        /// Voice channels
        #[arg(long, value_name = "N", group = "change", conflicts_with = "unlimited")]
        channels: Option<u32>,
        /// No channel limit
        #[arg(long, group = "change")]
        unlimited: bool,
        #[arg(long, group = "change", value_parser = ["flat", "metered"])]
        tariff: Option<String>,
        /// Replace the allowed networks (repeatable, or comma-separated)
        #[arg(
            long = "network",
            value_name = "CIDR",
            value_delimiter = ',',
            group = "change",
            conflicts_with = "no_networks"
        )]
        networks: Vec<String>,
        /// Allow registration from any network
        #[arg(long, group = "change")]
        no_networks: bool,
    },
    /// Enable a pending or disabled account
    Enable { account: String },
    /// Disable an account: its phones' registrations are dropped at once
    Disable { account: String },
    /// Delete a disabled account without extra numbers or caller-ID rules, with its log-ons
    Delete { account: String },
    /// Link a number (free, or created) to the account as an extra number
    AddNumber { account: String, number: String },
    /// Unlink an extra number; it becomes free
    RemoveNumber { account: String, number: String },
    /// Present one of the account's numbers to callees starting with a prefix
    AddCallerId {
        account: String,
        /// The number to present: the main or an extra number of the account
        #[arg(long, value_name = "NUMBER")]
        present: String,
        /// Callee prefix the rule applies to [default: every call]
        #[arg(long, value_name = "PREFIX", default_value = "")]
        prefix: String,
    },
    /// Remove a caller-ID rule (ids are in `account show`)
    RemoveCallerId { account: String, rule_id: u32 },
    /// List the account's call records, newest first
    Cdrs {
        account: String,
        /// At most this many records (1-10000) [default: 100]
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NumberCommand {
    /// List numbers and who holds them
    List {
        /// Only numbers linked to no account
        #[arg(long)]
        free: bool,
    },
    /// Show one number
    Show { number: String },
    /// Add a free number to the pool
    Create { number: String },
    /// Remove a free number from the pool
    Delete { number: String },
}

#[derive(Debug, Subcommand)]
pub enum LogonCommand {
    /// List every log-on
    List,
    /// Show one log-on
    Show { user: String },
    /// Create a log-on on a number linked to an account
    #[command(group(ArgGroup::new("secret").required(true)))]
    Create {
        #[arg(long)]
        user: String,
        /// The password; `-` reads it from the first line of standard input, which keeps it
        /// out of `ps` and the shell history
        #[arg(long, value_name = "PASSWORD", group = "secret")]
        password: Option<String>,
        /// Read the password from the first line of FILE
        #[arg(long, value_name = "FILE", group = "secret")]
        password_file: Option<PathBuf>,
        #[arg(long, value_name = "NUMBER")]
        number: String,
        /// Keepalive profile [default: the registrar's bounds]
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
    },
    /// Change a log-on; what is not given stays
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Update {
        user: String,
        /// New password; `-` reads it from the first line of standard input, which keeps it
        /// out of `ps` and the shell history
        #[arg(
            long,
            value_name = "PASSWORD",
            group = "change",
            conflicts_with = "password_file"
        )]
        password: Option<String>,
        /// Read the new password from the first line of FILE
        #[arg(long, value_name = "FILE", group = "change")]
        password_file: Option<PathBuf>,
        #[arg(long, value_name = "NUMBER", group = "change")]
        number: Option<String>,
        #[arg(
            long,
            value_name = "NAME",
            group = "change",
            conflicts_with = "no_profile"
        )]
        profile: Option<String>,
        /// Back to the registrar's bounds
        #[arg(long, group = "change")]
        no_profile: bool,
    },
    /// Delete a log-on: its registrations end and its licence is freed
    Delete { user: String },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List keepalive profiles (`default` is the registrar's configuration)
    List,
    /// Show one profile
    Show { name: String },
    /// Create a profile; seconds, with 1 <= min <= default <= max <= 86400
    Create {
        name: String,
        #[arg(long, value_name = "S")]
        min: u32,
        #[arg(long, value_name = "S")]
        max: u32,
        #[arg(long, value_name = "S")]
        default: u32,
    },
    /// Change a profile's bounds; what is not given stays
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Update {
        name: String,
        #[arg(long, value_name = "S", group = "change")]
        min: Option<u32>,
        #[arg(long, value_name = "S", group = "change")]
        max: Option<u32>,
        #[arg(long, value_name = "S", group = "change")]
        default: Option<u32>,
    },
    /// Delete a profile no log-on uses
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Licences in use, free, and who holds them
    Status,
    /// Free every licence; holders claim one again on their next call
    Reset,
    /// Change the number of licences (kept across restarts)
    SetTotal { total: u32 },
}

#[derive(Debug, Subcommand)]
pub enum RegistrationsCommand {
    /// End every registration of a log-on and free its licence
    Drop { user: String },
}

impl AdminCommand {
    pub fn api_opts(&self) -> &ApiOpts {
        match self {
            AdminCommand::Account { api, .. }
            | AdminCommand::Number { api, .. }
            | AdminCommand::Logon { api, .. }
            | AdminCommand::Profile { api, .. }
            | AdminCommand::Licence { api, .. }
            | AdminCommand::Registrations { api, .. }
            | AdminCommand::Cdrs { api, .. }
            | AdminCommand::Calls { api }
            | AdminCommand::Trunk { api, .. }
            | AdminCommand::Driver { api, .. } => api,
        }
    }
}

/// Why a command failed; [`Failure::render`] says it to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The `--config` file is unusable.
    Config(String),
    /// An option value is unusable.
    Usage(String),
    /// No connection to the API.
    Unreachable { url: String, error: String },
    /// The exchange broke, or the answer is not what the API sends.
    Exchange { url: String, error: String },
    /// The API answered with an error status.
    Api {
        url: String,
        status: u16,
        reason: String,
        body: Vec<u8>,
    },
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) | Failure::Usage(_) => EXIT_USAGE,
            _ => 1,
        }
    }

    /// The stderr text: `mgw: ...` and, for API errors, the fix and blockers on indented lines.
    pub fn render(&self) -> String {
        match self {
            Failure::Config(e) => format!("mgw: config: {}\n", printable(e)),
            Failure::Usage(e) => format!("mgw: {}\n", printable(e)),
            Failure::Unreachable { url, error } => format!(
                "mgw: cannot reach the admin API at {url}: {}; is mgw serve running? (set --api or {ENV_API})\n",
                printable(error)
            ),
            Failure::Exchange { url, error } => {
                format!("mgw: admin API at {url}: {}\n", printable(error))
            }
            Failure::Api {
                url,
                status,
                reason,
                body,
            } => render_api_error(url, *status, reason, body),
        }
    }
}

fn render_api_error(url: &str, status: u16, reason: &str, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str);
    let fix = parsed
        .as_ref()
        .and_then(|v| v.get("fix"))
        .and_then(Value::as_str);
    let mut out = match error {
        Some(e) if status == 401 => format!(
            "mgw: the admin API at {url} refused the token: {}\n",
            printable(e)
        ),
        Some(e) => format!("mgw: {}\n", printable(e)),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let mut snippet: String = text.chars().take(200).collect();
            if snippet.len() < text.len() {
                snippet.push_str("...");
            }
            format!(
                "mgw: the admin API at {url} answered {status} {}{}\n",
                printable(reason),
                if snippet.is_empty() {
                    String::new()
                } else {
                    format!(": {}", printable(&snippet))
                }
            )
        }
    };
    if status == 401 {
        // The server's own fix talks about HTTP headers; the operator needs the CLI's knobs.
        out.push_str(&format!(
            "  fix: pass the gateway's [admin] token with --token TOKEN or {ENV_TOKEN}=TOKEN, or --config FILE to read it from the gateway's config\n"
        ));
    } else if let Some(f) = fix {
        out.push_str(&format!("  fix: {}\n", printable(f)));
    }
    let blockers = parsed
        .as_ref()
        .and_then(|v| v.get("blockers"))
        .and_then(Value::as_array);
    for b in blockers.into_iter().flatten() {
        out.push_str(&format!("  blocker: {}\n", printable(&text(b))));
    }
    out
}

/// Where to send requests, and with which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub endpoint: Endpoint,
    pub token: String,
}

/// Resolves `--api`/`--token` against the environment (`env`) and the `--config` file
/// (`load`); the file is read only if options and environment leave something open, so a
/// copy of a config whose CSV or certificates are not on this host does not get in the way.
pub fn resolve(
    opts: &ApiOpts,
    env: &dyn Fn(&str) -> Option<String>,
    load: &dyn Fn(&Path) -> Result<Config, ConfigError>,
) -> Result<Target, Failure> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut api = opts.api.clone().or_else(|| env(ENV_API));
    let mut token = opts.token.clone().or_else(|| env(ENV_TOKEN));
    if let (Some(path), true) = (&opts.config, api.is_none() || token.is_none()) {
        let config = load(path).map_err(|e| Failure::Config(e.to_string()))?;
        api = api.or_else(|| Some(format!("http://{}", connectable(config.admin.listen))));
        token = token.or(Some(config.admin.token));
    }
    let api = api.unwrap_or_else(|| DEFAULT_API.to_string());
    let token = token.unwrap_or_else(|| DEFAULT_ADMIN_TOKEN.to_string());
    let endpoint = Endpoint::parse(&api).map_err(Failure::Usage)?;
    // A line break in the token would smuggle headers into the request.
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Failure::Usage(
            "the token is empty or contains spaces or control characters".to_string(),
        ));
    }
    Ok(Target { endpoint, token })
}

/// A listen address to connect to: a wildcard address means "this host".
fn connectable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// Sends API requests; the HTTP client in production, a script in the unit tests.
pub trait Transport {
    /// `path` is below the API root and percent-encoded. The JSON answer of a 2xx status
    /// (`null` when there is no body), else the failure.
    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure>;
}

/// [`Transport`] over [`http::request`].
pub struct HttpTransport {
    pub target: Target,
}

impl Transport for HttpTransport {
    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = self.target.endpoint.url().to_string();
        let body = body.map(|b| b.to_string().into_bytes());
        let response = http::request(
            &self.target.endpoint,
            method,
            path,
            &self.target.token,
            body.as_deref(),
        )
        .map_err(|e| match e {
            http::Error::Connect(e) => Failure::Unreachable {
                url: url.clone(),
                error: e.to_string(),
            },
            e => Failure::Exchange {
                url: url.clone(),
                error: e.to_string(),
            },
        })?;
        if !(200..300).contains(&response.status) {
            return Err(Failure::Api {
                url,
                status: response.status,
                reason: response.reason,
                body: response.body,
            });
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body).map_err(|e| Failure::Exchange {
            error: format!(
                "the answer to {method} {path} is not JSON ({e}); is {url} the admin API of mgw?"
            ),
            url,
        })
    }
}

/// Where `--password -` and `--password-file` read from: the process's standard input and
/// files in production, fixed text in the unit tests.
pub trait Input {
    /// The first line of standard input, without its line ending. `prompt` is for a person
    /// typing at a terminal.
    fn stdin_line(&mut self, prompt: &str) -> io::Result<String>;
    /// The first line of the file, without its line ending.
    fn file_line(&mut self, path: &Path) -> io::Result<String>;
}

/// A line longer than this is cut off; the API refuses passwords of more than 128 characters
/// anyway, and `--password-file /dev/zero` must not exhaust memory.
const MAX_LINE: u64 = 64 << 10;

/// The first line of `r` without `\n` or `\r\n`; empty if `r` is.
pub fn first_line(r: impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    r.take(MAX_LINE).read_line(&mut line)?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// [`Input`] of this process.
pub struct ProcessInput;

impl Input for ProcessInput {
    fn stdin_line(&mut self, prompt: &str) -> io::Result<String> {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            // Someone is typing: say what is expected rather than wait silently.
            let mut err = io::stderr().lock();
            let _ = err.write_all(prompt.as_bytes());
            let _ = err.flush();
        }
        first_line(stdin.lock())
    }

    fn file_line(&mut self, path: &Path) -> io::Result<String> {
        first_line(io::BufReader::new(std::fs::File::open(path)?))
    }
}

/// The password of `--password P`, `--password -` (standard input) or `--password-file FILE`;
/// `None` if neither option is given.
pub fn read_password(
    user: &str,
    password: Option<&str>,
    file: Option<&Path>,
    input: &mut dyn Input,
) -> Result<Option<String>, Failure> {
    let (line, origin) = match (password, file) {
        (Some("-"), _) => (
            input
                .stdin_line(&format!(
                    "password for log-on {user:?} (shown as typed; end with Enter): "
                ))
                .map_err(|e| {
                    Failure::Usage(format!("--password -: cannot read standard input: {e}"))
                })?,
            "--password -: the first line of standard input".to_string(),
        ),
        (Some(p), _) => return Ok(Some(p.to_string())),
        (None, Some(path)) => (
            input.file_line(path).map_err(|e| {
                Failure::Usage(format!(
                    "--password-file {}: cannot read it: {e}",
                    path.display()
                ))
            })?,
            format!("--password-file {}: its first line", path.display()),
        ),
        (None, None) => return Ok(None),
    };
    if line.is_empty() {
        return Err(Failure::Usage(format!(
            "{origin} is empty; it must hold the password (the line ending is not part of it)"
        )));
    }
    Ok(Some(line))
}

/// Runs an admin subcommand against the gateway and reports the outcome.
pub fn run(command: &AdminCommand) -> ExitCode {
    let target = match resolve(
        command.api_opts(),
        &|name| std::env::var(name).ok(),
        &|path| Config::load(Some(path)),
    ) {
        Ok(t) => t,
        Err(f) => return fail(&f),
    };
    let mut transport = HttpTransport { target };
    match execute(command, &mut transport, &mut ProcessInput) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`mgw account list | head -1`) is not an error of the command.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(f) => fail(&f),
    }
}

fn fail(f: &Failure) -> ExitCode {
    let _ = std::io::stderr().lock().write_all(f.render().as_bytes());
    ExitCode::from(f.exit_code())
}

/// Performs `command` through `t`, reading passwords given as `-` or a file from `input`; the
/// text for stdout.
pub fn execute(
    command: &AdminCommand,
    t: &mut dyn Transport,
    input: &mut dyn Input,
) -> Result<String, Failure> {
    let json = command.api_opts().json;
    let (answer, human) = match command {
        AdminCommand::Account { command, .. } => account(command, t)?,
        AdminCommand::Number { command, .. } => number(command, t)?,
        AdminCommand::Logon { command, .. } => logon(command, t, input)?,
        AdminCommand::Profile { command, .. } => profile(command, t)?,
        AdminCommand::Licence { command, .. } => licence(command, t)?,
        AdminCommand::Registrations {
            user,
            command: None,
            ..
        } => {
            let path = match user {
                Some(u) => format!("/api/v1/registrations?user={}", encode(u)),
                None => "/api/v1/registrations".to_string(),
            };
            let v = t.call("GET", &path, None)?;
            let human = registrations_table(&v);
            (v, human)
        }
        AdminCommand::Registrations {
            command: Some(RegistrationsCommand::Drop { user }),
            ..
        } => {
            let v = t.call(
                "DELETE",
                &format!("/api/v1/registrations/{}", encode(user)),
                None,
            )?;
            let human = format!(
                "log-on {:?}: {} registration(s) dropped\n",
                user,
                text(field(&v, "dropped"))
            );
            (v, human)
        }
        AdminCommand::Cdrs {
            limit,
            caller,
            callee,
            status,
            ..
        } => {
            let mut path = cdrs_path("/api/v1/cdrs", *limit);
            for (k, v) in [
                ("caller", caller.clone()),
                ("callee", callee.clone()),
                ("status", status.map(|s| s.to_string())),
            ] {
                if let Some(v) = v {
                    path.push(if path.contains('?') { '&' } else { '?' });
                    path.push_str(&format!("{k}={}", encode(&v)));
                }
            }
            let v = t.call("GET", &path, None)?;
            let human = cdrs_table(&v, true);
            (v, human)
        }
        AdminCommand::Calls { .. } => {
            let v = t.call("GET", "/api/v1/calls", None)?;
            let human = calls_table(&v);
            (v, human)
        }
        AdminCommand::Trunk { command, .. } => match command {
            TrunkCommand::List => {
                let v = t.call("GET", "/api/v1/trunks", None)?;
                let human = trunks_table(&v);
                (v, human)
            }
            TrunkCommand::Connect { name } | TrunkCommand::Disconnect { name } => {
                let verb = if matches!(command, TrunkCommand::Connect { .. }) {
                    "connect"
                } else {
                    "disconnect"
                };
                let v = t.call(
                    "POST",
                    &format!("/api/v1/trunks/{}/{verb}", encode(name)),
                    None,
                )?;
                (v, format!("trunk {name:?}: {verb} requested\n"))
            }
        },
        AdminCommand::Driver { command, .. } => {
            let (driver, body) = match command {
                DriverCommand::List => {
                    let v = t.call("GET", "/api/v1/drivers", None)?;
                    let human = drivers_table(&v);
                    return Ok(if json { pretty(&v) } else { human });
                }
                DriverCommand::Dial { driver, from, to } => (
                    driver,
                    serde_json::json!({"action": "dial", "from": from, "to": to}),
                ),
                DriverCommand::Answer { driver, party } => (
                    driver,
                    serde_json::json!({"action": "answer", "party": party}),
                ),
                DriverCommand::Hangup { driver, party } => (
                    driver,
                    serde_json::json!({"action": "hangup", "party": party}),
                ),
                DriverCommand::Layer1 { driver, state } => (
                    driver,
                    serde_json::json!({"action": "layer1", "up": *state == UpDown::Up}),
                ),
                DriverCommand::Signalling { driver, state } => (
                    driver,
                    serde_json::json!({"action": "signalling", "up": *state == UpDown::Up}),
                ),
            };
            let v = t.call(
                "POST",
                &format!("/api/v1/drivers/{}/simulate", encode(driver)),
                Some(&body),
            )?;
            (v, format!("driver {driver:?}: done\n"))
        }
    };
    if command.api_opts().json {
        Ok(pretty(&answer))
    } else {
        Ok(human)
    }
}

type Outcome = Result<(Value, String), Failure>;

fn account(command: &AccountCommand, t: &mut dyn Transport) -> Outcome {
    let path = |id: &str| format!("/api/v1/accounts/{}", encode(id));
    Ok(match command {
        AccountCommand::List => {
            let v = t.call("GET", "/api/v1/accounts", None)?;
            let human = accounts_table(&v);
            (v, human)
        }
        AccountCommand::Show { account } => {
            let v = t.call("GET", &path(account), None)?;
            let human = account_details(&v);
            (v, human)
        }
        AccountCommand::Create {
            name,
            main_number,
            channels,
            tariff,
            networks,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("main_number".into(), json!(main_number));
            if let Some(c) = channels {
                body.insert("channels".into(), json!(c));
            }
            if let Some(tariff) = tariff {
                body.insert("tariff".into(), json!(tariff));
            }
            if !networks.is_empty() {
                body.insert("allowed_networks".into(), json!(networks));
            }
            let v = t.call("POST", "/api/v1/accounts", Some(&Value::Object(body)))?;
            let id = text(field(&v, "id"));
            let human = format!(
                "{} created ({}) with main number {}; enable it with: mgw account enable {id}\n",
                account_label(&v),
                text(field(&v, "state")),
                text(field(&v, "main_number")),
            );
            (v, human)
        }
        AccountCommand::Update {
            account,
            name,
            channels,
            unlimited,
            tariff,
            networks,
            no_networks,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(c) = channels {
                body.insert("channels".into(), json!(c));
            }
            if *unlimited {
                body.insert("channels".into(), Value::Null);
            }
            if let Some(tariff) = tariff {
                body.insert("tariff".into(), json!(tariff));
            }
            if !networks.is_empty() || *no_networks {
                body.insert("allowed_networks".into(), json!(networks));
            }
            let v = t.call("PATCH", &path(account), Some(&Value::Object(body)))?;
            let human = format!(
                "{} updated: channels {}, tariff {}, allowed networks {}\n",
                account_label(&v),
                channels_text(&v),
                text(field(&v, "tariff")),
                networks_text(&v),
            );
            (v, human)
        }
        AccountCommand::Enable { account } => {
            let v = t.call("POST", &format!("{}/enable", path(account)), None)?;
            let human = format!("{} enabled\n", account_label(&v));
            (v, human)
        }
        AccountCommand::Disable { account } => {
            let v = t.call("POST", &format!("{}/disable", path(account)), None)?;
            let log_ons = strings(field(&v, "log_ons"));
            let human = if log_ons.is_empty() {
                format!("{} disabled\n", account_label(&v))
            } else {
                format!(
                    "{} disabled; its log-ons ({}) cannot register and their registrations were dropped\n",
                    account_label(&v),
                    log_ons.join(", ")
                )
            };
            (v, human)
        }
        AccountCommand::Delete { account } => {
            let v = t.call("DELETE", &path(account), None)?;
            let log_ons = strings(field(&v, "log_ons"));
            let mut human = format!(
                "{} deleted; main number {} is free",
                account_label(&v),
                text(field(&v, "main_number"))
            );
            if !log_ons.is_empty() {
                human.push_str(&format!("; log-ons deleted: {}", log_ons.join(", ")));
            }
            human.push('\n');
            (v, human)
        }
        AccountCommand::AddNumber { account, number } => {
            let v = t.call(
                "POST",
                &format!("{}/numbers", path(account)),
                Some(&json!({ "number": number })),
            )?;
            let human = format!(
                "number {number} linked to {} as an extra number\n",
                account_label(&v)
            );
            (v, human)
        }
        AccountCommand::RemoveNumber { account, number } => {
            let v = t.call(
                "DELETE",
                &format!("{}/numbers/{}", path(account), encode(number)),
                None,
            )?;
            let human = format!(
                "number {number} unlinked from {}; it is free\n",
                account_label(&v)
            );
            (v, human)
        }
        AccountCommand::AddCallerId {
            account,
            present,
            prefix,
        } => {
            let v = t.call(
                "POST",
                &format!("{}/caller-id-rules", path(account)),
                Some(&json!({ "prefix": prefix, "present": present })),
            )?;
            // The answer is the whole account; the new rule is the newest one like it.
            let rule_id = items(field(&v, "caller_id_rules"))
                .iter()
                .filter(|r| {
                    r.get("present").and_then(Value::as_str) == Some(present.as_str())
                        && r.get("prefix").and_then(Value::as_str) == Some(prefix.as_str())
                })
                .filter_map(|r| r.get("id").and_then(Value::as_u64))
                .max();
            let rule = rule_id.map_or_else(
                || "caller-ID rule".to_string(),
                |id| format!("caller-ID rule {id}"),
            );
            let applies = if prefix.is_empty() {
                "every call".to_string()
            } else {
                format!("calls to {prefix}...")
            };
            let human = format!(
                "{rule} added to {}: {applies} present {present}\n",
                account_label(&v)
            );
            (v, human)
        }
        AccountCommand::RemoveCallerId { account, rule_id } => {
            let v = t.call(
                "DELETE",
                &format!("{}/caller-id-rules/{rule_id}", path(account)),
                None,
            )?;
            let human = format!(
                "caller-ID rule {rule_id} removed from {}\n",
                account_label(&v)
            );
            (v, human)
        }
        AccountCommand::Cdrs { account, limit } => {
            let v = t.call(
                "GET",
                &cdrs_path(&format!("{}/cdrs", path(account)), *limit),
                None,
            )?;
            let human = cdrs_table(&v, false);
            (v, human)
        }
    })
}

fn number(command: &NumberCommand, t: &mut dyn Transport) -> Outcome {
    let path = |n: &str| format!("/api/v1/numbers/{}", encode(n));
    Ok(match command {
        NumberCommand::List { free } => {
            let v = t.call(
                "GET",
                if *free {
                    "/api/v1/numbers?free=true"
                } else {
                    "/api/v1/numbers"
                },
                None,
            )?;
            let mut table = Table::new(&["NUMBER", "ACCOUNT", "ROLE", "LOG-ONS"]);
            for n in items(&v) {
                table.row(vec![
                    text(field(n, "number")),
                    number_owner(n),
                    number_role(n),
                    strings(field(n, "log_ons")).join(","),
                ]);
            }
            let human = render(
                &table,
                if *free {
                    "no free numbers"
                } else {
                    "no numbers"
                },
            );
            (v, human)
        }
        NumberCommand::Show { number } => {
            let v = t.call("GET", &path(number), None)?;
            let human = key_values(&[
                ("number", text(field(&v, "number"))),
                ("account", number_owner(&v)),
                ("role", number_role(&v)),
                ("log-ons", strings(field(&v, "log_ons")).join(", ")),
            ]);
            (v, human)
        }
        NumberCommand::Create { number } => {
            let v = t.call(
                "POST",
                "/api/v1/numbers",
                Some(&json!({ "number": number })),
            )?;
            let human = format!("number {} created (free)\n", text(field(&v, "number")));
            (v, human)
        }
        NumberCommand::Delete { number } => {
            let v = t.call("DELETE", &path(number), None)?;
            let human = format!("number {} deleted\n", text(field(&v, "number")));
            (v, human)
        }
    })
}

fn logon(command: &LogonCommand, t: &mut dyn Transport, input: &mut dyn Input) -> Outcome {
    let path = |u: &str| format!("/api/v1/log-ons/{}", encode(u));
    Ok(match command {
        LogonCommand::List => {
            let v = t.call("GET", "/api/v1/log-ons", None)?;
            let mut table = Table::new(&[
                "USER",
                "NUMBER",
                "ACCOUNT",
                "PROFILE",
                "SOURCE",
                "REGISTRATIONS",
                "LICENCE",
            ]);
            for l in items(&v) {
                table.row(vec![
                    text(field(l, "user")),
                    text(field(l, "number")),
                    logon_account(l),
                    profile_name(l),
                    text(field(l, "source")),
                    text(field(l, "bindings")),
                    text(field(l, "licence")),
                ]);
            }
            let human = render(&table, "no log-ons");
            (v, human)
        }
        LogonCommand::Show { user } => {
            let v = t.call("GET", &path(user), None)?;
            let human = key_values(&[
                ("user", text(field(&v, "user"))),
                ("number", text(field(&v, "number"))),
                ("account", logon_account(&v)),
                ("profile", profile_name(&v)),
                ("source", text(field(&v, "source"))),
                ("registrations", text(field(&v, "bindings"))),
                ("licence", text(field(&v, "licence"))),
                ("created", text(field(&v, "created_at"))),
            ]);
            (v, human)
        }
        LogonCommand::Create {
            user,
            password,
            password_file,
            number,
            profile,
        } => {
            // clap's group "secret" requires one of the two options, so there is a password.
            let password =
                read_password(user, password.as_deref(), password_file.as_deref(), input)?
                    .unwrap_or_default();
            let mut body = json!({ "user": user, "password": password, "number": number });
            if let (Some(p), Some(obj)) = (profile, body.as_object_mut()) {
                obj.insert("profile".into(), json!(p));
            }
            let v = t.call("POST", "/api/v1/log-ons", Some(&body))?;
            let human = format!(
                "log-on {:?} created on number {} of account {}, profile {}\n",
                text(field(&v, "user")),
                text(field(&v, "number")),
                logon_account(&v),
                profile_name(&v),
            );
            (v, human)
        }
        LogonCommand::Update {
            user,
            password,
            password_file,
            number,
            profile,
            no_profile,
        } => {
            let password =
                read_password(user, password.as_deref(), password_file.as_deref(), input)?;
            let mut body = Map::new();
            if let Some(p) = &password {
                body.insert("password".into(), json!(p));
            }
            if let Some(n) = number {
                body.insert("number".into(), json!(n));
            }
            if let Some(p) = profile {
                body.insert("profile".into(), json!(p));
            }
            if *no_profile {
                body.insert("profile".into(), Value::Null);
            }
            let v = t.call("PATCH", &path(user), Some(&Value::Object(body)))?;
            let mut human = format!(
                "log-on {:?} updated: number {} of account {}, profile {}",
                text(field(&v, "user")),
                text(field(&v, "number")),
                logon_account(&v),
                profile_name(&v),
            );
            if password.is_some() {
                human.push_str(", new password");
            }
            human.push('\n');
            (v, human)
        }
        LogonCommand::Delete { user } => {
            let v = t.call("DELETE", &path(user), None)?;
            let mut human = format!("log-on {:?} deleted", text(field(&v, "user")));
            let bindings = field(&v, "bindings").as_u64().unwrap_or(0);
            if bindings > 0 {
                human.push_str(&format!("; {bindings} registration(s) dropped"));
            }
            if field(&v, "licence").as_bool() == Some(true) {
                human.push_str("; its licence was freed");
            }
            human.push('\n');
            (v, human)
        }
    })
}

fn profile(command: &ProfileCommand, t: &mut dyn Transport) -> Outcome {
    let path = |n: &str| format!("/api/v1/profiles/{}", encode(n));
    Ok(match command {
        ProfileCommand::List => {
            let v = t.call("GET", "/api/v1/profiles", None)?;
            let mut table = Table::new(&["NAME", "MIN", "DEFAULT", "MAX", "LOG-ONS"]);
            for p in items(&v) {
                table.row(vec![
                    text(field(p, "name")),
                    seconds(field(p, "min_expires")),
                    seconds(field(p, "default_expires")),
                    seconds(field(p, "max_expires")),
                    text(field(p, "log_ons")),
                ]);
            }
            let human = render(&table, "no profiles");
            (v, human)
        }
        ProfileCommand::Show { name } => {
            let v = t.call("GET", &path(name), None)?;
            let human = key_values(&[
                ("name", text(field(&v, "name"))),
                ("min expires", seconds(field(&v, "min_expires"))),
                ("default expires", seconds(field(&v, "default_expires"))),
                ("max expires", seconds(field(&v, "max_expires"))),
                ("log-ons", text(field(&v, "log_ons"))),
            ]);
            (v, human)
        }
        ProfileCommand::Create {
            name,
            min,
            max,
            default,
        } => {
            let body = json!({
                "name": name,
                "min_expires": min,
                "max_expires": max,
                "default_expires": default,
            });
            let v = t.call("POST", "/api/v1/profiles", Some(&body))?;
            let human = format!("profile {:?} created ({})\n", name, bounds(&v));
            (v, human)
        }
        ProfileCommand::Update {
            name,
            min,
            max,
            default,
        } => {
            // PUT replaces all three bounds; fill in the ones not given from the current ones.
            let current = if min.is_none() || max.is_none() || default.is_none() {
                t.call("GET", &path(name), None)?
            } else {
                Value::Null
            };
            let pick = |given: &Option<u32>, key: &str| match given {
                Some(s) => json!(s),
                None => field(&current, key).clone(),
            };
            let body = json!({
                "name": name,
                "min_expires": pick(min, "min_expires"),
                "max_expires": pick(max, "max_expires"),
                "default_expires": pick(default, "default_expires"),
            });
            let v = t.call("PUT", &path(name), Some(&body))?;
            let human = format!(
                "profile {:?} updated ({}); registrations keep their expiry until the phone's next REGISTER\n",
                name,
                bounds(&v)
            );
            (v, human)
        }
        ProfileCommand::Delete { name } => {
            let v = t.call("DELETE", &path(name), None)?;
            let human = format!("profile {name:?} deleted\n");
            (v, human)
        }
    })
}

fn licence(command: &LicenceCommand, t: &mut dyn Transport) -> Outcome {
    Ok(match command {
        LicenceCommand::Status => {
            let v = t.call("GET", "/api/v1/licences", None)?;
            let mut human = licence_summary(&v);
            human.push_str(&format!(
                "Logged-on subscribers: {}; last reset: {}\n",
                text(field(&v, "logged_on")),
                field(&v, "last_reset").as_str().unwrap_or("never"),
            ));
            let mut table = Table::new(&["USER", "NUMBER", "SINCE"]);
            for h in items(field(&v, "holders")) {
                table.row(vec![
                    text(field(h, "user")),
                    text(field(h, "number")),
                    text(field(h, "since")),
                ]);
            }
            if !table.is_empty() {
                human.push_str(&table.render());
            }
            (v, human)
        }
        LicenceCommand::Reset => {
            let v = t.call("POST", "/api/v1/licences/reset", None)?;
            let users = strings(field(&v, "users"));
            let mut human = format!("licences reset: {} freed", text(field(&v, "freed")));
            if !users.is_empty() {
                human.push_str(&format!(" ({})", users.join(", ")));
            }
            human.push_str("; ");
            human.push_str(&licence_summary(field(&v, "status")));
            (v, human)
        }
        LicenceCommand::SetTotal { total } => {
            let v = t.call("PUT", "/api/v1/licences", Some(&json!({ "total": total })))?;
            let human = format!("licence total set to {total}; {}", licence_summary(&v));
            (v, human)
        }
    })
}

fn licence_summary(status: &Value) -> String {
    format!(
        "Licences: {} of {} in use ({} free)\n",
        text(field(status, "in_use")),
        text(field(status, "total")),
        text(field(status, "free")),
    )
}

fn registrations_table(v: &Value) -> String {
    let mut table = Table::new(&[
        "USER",
        "NUMBER",
        "CONTACT",
        "SOURCE",
        "TRANSPORT",
        "EXPIRES_IN",
        "USER_AGENT",
    ]);
    for r in items(v) {
        table.row(vec![
            text(field(r, "user")),
            text(field(r, "number")),
            text(field(r, "contact")),
            text(field(r, "source")),
            text(field(r, "transport")),
            seconds(field(r, "expires_in")),
            text(field(r, "user_agent")),
        ]);
    }
    render(&table, "no registrations")
}

fn trunks_table(v: &Value) -> String {
    let mut table = Table::new(&[
        "ENTRY",
        "NAME",
        "STATE",
        "SERVER",
        "TRANSPORT",
        "EXPIRES",
        "CALLS",
        "PREFIX",
        "REASON",
    ]);
    for tr in items(v) {
        table.row(vec![
            text(field(tr, "entry")),
            text(field(tr, "name")),
            text(field(tr, "state")),
            text(field(tr, "server")),
            text(field(tr, "transport")),
            seconds(field(tr, "expires_in")),
            text(field(tr, "calls")),
            text(field(tr, "prefix")),
            text(field(tr, "reason")),
        ]);
    }
    render(&table, "no trunks configured")
}

fn drivers_table(v: &Value) -> String {
    let mut table = Table::new(&["NAME", "KIND", "UP", "CHANNELS", "NUMBERS", "DETAIL"]);
    for d in items(v) {
        table.row(vec![
            text(field(d, "name")),
            text(field(d, "kind")),
            text(field(d, "up")),
            format!(
                "{}/{}",
                text(field(d, "channels_busy")),
                text(field(d, "channels_total"))
            ),
            strings(field(d, "numbers")).join(","),
            text(field(d, "detail")),
        ]);
    }
    render(&table, "no line drivers configured")
}

fn calls_table(v: &Value) -> String {
    let mut table = Table::new(&[
        "ID", "ACCOUNT", "CALLER", "DIALLED", "CALLEE", "TRUNK", "STATE", "STARTED", "DURATION",
    ]);
    for c in items(v) {
        table.row(vec![
            text(field(c, "id")),
            text(field(c, "account_id")),
            text(field(c, "caller")),
            text(field(c, "dialled")),
            text(field(c, "callee")),
            text(field(c, "trunk")),
            text(field(c, "state")),
            text(field(c, "started_at")),
            seconds(field(c, "duration_s")),
        ]);
    }
    render(&table, "no calls in progress")
}

fn cdrs_path(base: &str, limit: Option<u32>) -> String {
    match limit {
        Some(l) => format!("{base}?limit={l}"),
        None => base.to_string(),
    }
}

fn cdrs_table(v: &Value, with_account: bool) -> String {
    let mut headers = vec!["ID"];
    if with_account {
        headers.push("ACCOUNT");
    }
    headers.extend([
        "STARTED",
        "CALLER",
        "CALLEE",
        "DIRECTION",
        "TRUNK",
        "DURATION",
        "CAUSE",
        "STATUS",
    ]);
    let mut table = Table::new(&headers);
    for c in items(v) {
        let mut row = vec![text(field(c, "id"))];
        if with_account {
            row.push(text(field(c, "account_id")));
        }
        let answered = !field(c, "answered_at").is_null();
        row.extend([
            text(field(c, "started_at")),
            text(field(c, "caller")),
            text(field(c, "callee")),
            text(field(c, "direction")),
            text(field(c, "trunk")),
            if answered {
                seconds(field(c, "duration_s"))
            } else {
                "not answered".to_string()
            },
            text(field(c, "cause")),
            text(field(c, "status")),
        ]);
        table.row(row);
    }
    render(&table, "no call records")
}

fn accounts_table(v: &Value) -> String {
    let mut table = Table::new(&[
        "ID", "NAME", "STATE", "MAIN", "EXTRA", "CHANNELS", "TARIFF", "LOG-ONS",
    ]);
    for a in items(v) {
        let channels = match field(a, "channels").as_u64() {
            Some(limit) => format!(
                "{}/{limit}",
                field(a, "channels_busy").as_u64().unwrap_or(0)
            ),
            None => "unlimited".to_string(),
        };
        table.row(vec![
            text(field(a, "id")),
            text(field(a, "name")),
            text(field(a, "state")),
            text(field(a, "main_number")),
            strings(field(a, "extra_numbers")).join(","),
            channels,
            text(field(a, "tariff")),
            strings(field(a, "log_ons")).join(","),
        ]);
    }
    render(&table, "no accounts")
}

fn account_details(v: &Value) -> String {
    let rules: Vec<String> = items(field(v, "caller_id_rules"))
        .iter()
        .map(|r| {
            let prefix = r.get("prefix").and_then(Value::as_str).unwrap_or_default();
            format!(
                "#{} {} -> {}",
                r.get("id").map(text).unwrap_or_default(),
                if prefix.is_empty() {
                    "every call".to_string()
                } else {
                    format!("calls to {prefix}...")
                },
                r.get("present").map(text).unwrap_or_default()
            )
        })
        .collect();
    key_values(&[
        ("id", text(field(v, "id"))),
        ("name", text(field(v, "name"))),
        ("state", text(field(v, "state"))),
        ("main number", text(field(v, "main_number"))),
        (
            "extra numbers",
            strings(field(v, "extra_numbers")).join(", "),
        ),
        ("channels", channels_text(v)),
        ("tariff", text(field(v, "tariff"))),
        ("allowed networks", networks_text(v)),
        ("caller-ID rules", rules.join("; ")),
        ("log-ons", strings(field(v, "log_ons")).join(", ")),
        ("created", text(field(v, "created_at"))),
        ("updated", text(field(v, "updated_at"))),
    ])
}

fn account_label(v: &Value) -> String {
    format!(
        "account {} {:?}",
        text(field(v, "id")),
        text(field(v, "name"))
    )
}

fn channels_text(v: &Value) -> String {
    let busy = field(v, "channels_busy").as_u64().unwrap_or(0);
    match field(v, "channels").as_u64() {
        Some(limit) => format!("{limit} ({busy} busy)"),
        None => format!("unlimited ({busy} busy)"),
    }
}

fn networks_text(v: &Value) -> String {
    let nets = strings(field(v, "allowed_networks"));
    if nets.is_empty() {
        "any".to_string()
    } else {
        nets.join(", ")
    }
}

fn number_owner(n: &Value) -> String {
    match (
        field(n, "account_id").as_u64(),
        field(n, "account").as_str(),
    ) {
        (Some(id), Some(name)) => format!("{id} ({name})"),
        (Some(id), None) => id.to_string(),
        _ => String::new(),
    }
}

fn number_role(n: &Value) -> String {
    field(n, "role").as_str().unwrap_or("free").to_string()
}

fn logon_account(l: &Value) -> String {
    format!(
        "{} ({})",
        text(field(l, "account_id")),
        text(field(l, "account"))
    )
}

fn profile_name(l: &Value) -> String {
    field(l, "profile")
        .as_str()
        // What the API lists the registrar's own bounds as.
        .unwrap_or("default")
        .to_string()
}

fn bounds(p: &Value) -> String {
    format!(
        "min {}, default {}, max {}",
        seconds(field(p, "min_expires")),
        seconds(field(p, "default_expires")),
        seconds(field(p, "max_expires"))
    )
}

fn seconds(v: &Value) -> String {
    match v.as_u64() {
        Some(s) => format!("{s}s"),
        None => text(v),
    }
}

/// The table, or `empty` when it has no rows.
fn render(table: &Table, empty: &str) -> String {
    if table.is_empty() {
        format!("{empty}\n")
    } else {
        table.render()
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

/// The elements of an array; anything else (a changed or broken server) shows as none.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn strings(v: &Value) -> Vec<String> {
    items(v)
        .iter()
        .map(text)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A JSON value as people read it: strings unquoted, `null` empty, booleans yes/no.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) => strings(v).join(","),
        Value::Object(_) => v.to_string(),
    }
}

fn pretty(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::collections::VecDeque;

    fn parse(args: &str) -> Result<AdminCommand, clap::Error> {
        parse_args(&args.split_whitespace().collect::<Vec<_>>())
    }

    fn parse_args(args: &[&str]) -> Result<AdminCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("mgw").chain(args.iter().copied()))?;
        match cli.command {
            Command::Admin(c) => Ok(c),
            other => panic!("not an admin command: {other:?}"),
        }
    }

    /// (method, path, body)
    type Call = (String, String, Option<Value>);

    /// Answers calls from a script and records them.
    #[derive(Default)]
    struct Script {
        calls: Vec<Call>,
        answers: VecDeque<Result<Value, Failure>>,
    }

    impl Script {
        fn answering(answers: Vec<Value>) -> Script {
            Script {
                calls: Vec::new(),
                answers: answers.into_iter().map(Ok).collect(),
            }
        }
    }

    impl Transport for Script {
        fn call(
            &mut self,
            method: &str,
            path: &str,
            body: Option<&Value>,
        ) -> Result<Value, Failure> {
            self.calls
                .push((method.to_string(), path.to_string(), body.cloned()));
            self.answers.pop_front().unwrap_or(Ok(Value::Null))
        }
    }

    /// Runs `args` (separated by whitespace) against `answers`; (stdout, calls).
    fn run_script(args: &str, answers: Vec<Value>) -> (String, Vec<Call>) {
        run_script_args(&args.split_whitespace().collect::<Vec<_>>(), answers)
    }

    fn run_script_args(args: &[&str], answers: Vec<Value>) -> (String, Vec<Call>) {
        let (out, calls) = run_with_input(args, &mut Typed::default(), answers);
        (out.unwrap(), calls)
    }

    /// Runs `args` with `input` as standard input and files; (outcome, calls).
    fn run_with_input(
        args: &[&str],
        input: &mut Typed,
        answers: Vec<Value>,
    ) -> (Result<String, Failure>, Vec<Call>) {
        let command = parse_args(args).unwrap();
        let mut script = Script::answering(answers);
        let out = execute(&command, &mut script, input);
        (out, script.calls)
    }

    /// Standard input and files with fixed contents; records the prompts.
    #[derive(Default)]
    struct Typed {
        stdin: Vec<u8>,
        files: Vec<(PathBuf, Vec<u8>)>,
        prompts: Vec<String>,
    }

    impl Typed {
        fn stdin(text: &str) -> Typed {
            Typed {
                stdin: text.as_bytes().to_vec(),
                ..Typed::default()
            }
        }

        fn file(path: &str, text: &str) -> Typed {
            Typed {
                files: vec![(PathBuf::from(path), text.as_bytes().to_vec())],
                ..Typed::default()
            }
        }
    }

    impl Input for Typed {
        fn stdin_line(&mut self, prompt: &str) -> io::Result<String> {
            self.prompts.push(prompt.to_string());
            first_line(self.stdin.as_slice())
        }

        fn file_line(&mut self, path: &Path) -> io::Result<String> {
            match self.files.iter().find(|(p, _)| p == path) {
                Some((_, text)) => first_line(text.as_slice()),
                None => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
    }

    fn shop() -> Value {
        json!({
            "id": 3, "name": "shop", "state": "pending", "main_number": "0301234",
            "extra_numbers": ["0301235"], "channels": 4, "channels_busy": 1, "tariff": "flat",
            "allowed_networks": [], "caller_id_rules": [
                {"id": 1, "prefix": "", "present": "0301234"},
                {"id": 7, "prefix": "030", "present": "0301235"}
            ],
            "log_ons": ["alice", "bob"], "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-02T00:00:00Z"
        })
    }

    #[test]
    fn command_line_shapes() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        // Common options before or after the subcommand.
        for args in [
            "account --api http://h:1 --json list",
            "account list --api http://h:1 --json",
        ] {
            let c = parse(args).unwrap();
            assert_eq!(c.api_opts().api.as_deref(), Some("http://h:1"), "{args:?}");
            assert!(c.api_opts().json);
        }
        let c = parse("cdrs --limit 5 --token t -c x.toml").unwrap();
        assert!(matches!(c, AdminCommand::Cdrs { limit: Some(5), .. }));
        assert_eq!(c.api_opts().config.as_deref(), Some(Path::new("x.toml")));
        assert_eq!(c.api_opts().token.as_deref(), Some("t"));

        assert!(parse("account").is_err(), "needs a subcommand");
        assert!(parse("account update 3").is_err(), "nothing to change");
        assert!(parse("account update 3 --channels 2 --unlimited").is_err());
        assert!(parse("account update 3 --network 10.0.0.0/8 --no-networks").is_err());
        assert!(parse("account create --name x --main-number 1 --tariff free").is_err());
        assert!(parse("account create --name x").is_err());
        assert!(parse("logon update u --profile p --no-profile").is_err());
        assert!(parse("logon update u").is_err());
        assert!(parse("profile update p").is_err());
        assert!(parse("licence set-total many").is_err());
        assert!(parse("account remove-caller-id 3 x").is_err());
        assert!(parse("registrations --user a drop b").is_err());
        assert!(matches!(
            parse("registrations drop bob").unwrap(),
            AdminCommand::Registrations { command: Some(RegistrationsCommand::Drop { ref user }), .. } if user == "bob"
        ));
        assert!(matches!(
            parse("registrations").unwrap(),
            AdminCommand::Registrations {
                command: None,
                user: None,
                ..
            }
        ));
        // serve keeps its own options only.
        assert!(Cli::try_parse_from(["mgw", "serve", "--json"]).is_err());
    }

    #[test]
    fn account_create_sends_only_what_is_given() {
        let (out, calls) = run_script(
            "account create --name shop --main-number 0301234",
            vec![shop()],
        );
        assert_eq!(
            calls,
            vec![(
                "POST".into(),
                "/api/v1/accounts".into(),
                Some(json!({"name": "shop", "main_number": "0301234"}))
            )]
        );
        assert_eq!(
            out,
            "account 3 \"shop\" created (pending) with main number 0301234; enable it with: mgw account enable 3\n"
        );

        let (_, calls) = run_script(
            "account create --name shop --main-number 0301234 --channels 4 --tariff flat --network 10.0.0.0/8,192.168.1.0/24 --network 172.16.0.0/12",
            vec![shop()],
        );
        assert_eq!(
            calls[0].2,
            Some(json!({
                "name": "shop", "main_number": "0301234", "channels": 4, "tariff": "flat",
                "allowed_networks": ["10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12"]
            }))
        );
    }

    #[test]
    fn account_updates() {
        let (out, calls) = run_script(
            "account update shop --unlimited --no-networks",
            vec![shop()],
        );
        assert_eq!(calls[0].0, "PATCH");
        assert_eq!(calls[0].1, "/api/v1/accounts/shop");
        assert_eq!(
            calls[0].2,
            Some(json!({"channels": null, "allowed_networks": []}))
        );
        assert!(out.starts_with("account 3 \"shop\" updated"), "{out}");
        let (_, calls) = run_script(
            "account update 3 --name new --channels 2 --tariff metered",
            vec![shop()],
        );
        assert_eq!(
            calls[0].2,
            Some(json!({"name": "new", "channels": 2, "tariff": "metered"}))
        );
    }

    #[test]
    fn account_life_cycle_paths_and_messages() {
        // (arguments, method, path, body, stdout)
        type Case<'a> = (&'a str, &'a str, &'a str, Option<Value>, &'a str);
        let cases: &[Case<'_>] = &[
            ("account enable 3", "POST", "/api/v1/accounts/3/enable", None, "account 3 \"shop\" enabled\n"),
            ("account disable 3", "POST", "/api/v1/accounts/3/disable", None,
             "account 3 \"shop\" disabled; its log-ons (alice, bob) cannot register and their registrations were dropped\n"),
            ("account delete 3", "DELETE", "/api/v1/accounts/3", None,
             "account 3 \"shop\" deleted; main number 0301234 is free; log-ons deleted: alice, bob\n"),
            ("account add-number 3 +49301", "POST", "/api/v1/accounts/3/numbers", Some(json!({"number": "+49301"})),
             "number +49301 linked to account 3 \"shop\" as an extra number\n"),
            ("account remove-number 3 +49301", "DELETE", "/api/v1/accounts/3/numbers/%2B49301", None,
             "number +49301 unlinked from account 3 \"shop\"; it is free\n"),
            ("account add-caller-id 3 --present 0301235 --prefix 030", "POST",
             "/api/v1/accounts/3/caller-id-rules", Some(json!({"prefix": "030", "present": "0301235"})),
             "caller-ID rule 7 added to account 3 \"shop\": calls to 030... present 0301235\n"),
            ("account add-caller-id 3 --present 0301234", "POST",
             "/api/v1/accounts/3/caller-id-rules", Some(json!({"prefix": "", "present": "0301234"})),
             "caller-ID rule 1 added to account 3 \"shop\": every call present 0301234\n"),
            ("account remove-caller-id 3 7", "DELETE", "/api/v1/accounts/3/caller-id-rules/7", None,
             "caller-ID rule 7 removed from account 3 \"shop\"\n"),
        ];
        for (args, method, path, body, expected) in cases {
            let (out, calls) = run_script(args, vec![shop()]);
            assert_eq!(
                calls,
                vec![(method.to_string(), path.to_string(), body.clone())],
                "{args:?}"
            );
            assert_eq!(out, *expected, "{args:?}");
        }
        // Names and numbers are path segments, so they are percent-encoded.
        let (_, calls) = run_script_args(&["account", "show", "my shop/1"], vec![shop()]);
        assert_eq!(calls[0].1, "/api/v1/accounts/my%20shop%2F1");
    }

    #[test]
    fn account_list_show_and_json() {
        let mut unlimited = shop();
        unlimited["id"] = json!(12);
        unlimited["name"] = json!("Bäckerei");
        unlimited["channels"] = Value::Null;
        unlimited["extra_numbers"] = json!([]);
        unlimited["log_ons"] = json!([]);
        let list = json!([shop(), unlimited]);
        let (out, calls) = run_script("account list", vec![list.clone()]);
        assert_eq!(calls[0].1, "/api/v1/accounts");
        assert_eq!(
            out,
            "ID  NAME      STATE    MAIN     EXTRA    CHANNELS   TARIFF  LOG-ONS\n\
             3   shop      pending  0301234  0301235  1/4        flat    alice,bob\n\
             12  Bäckerei  pending  0301234  -        unlimited  flat    -\n"
        );
        let (out, _) = run_script("account list --json", vec![list.clone()]);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), list);
        assert!(out.contains("\n  {"), "pretty-printed: {out}");
        let (out, _) = run_script("account list", vec![json!([])]);
        assert_eq!(out, "no accounts\n");

        let (out, _) = run_script("account show 3", vec![shop()]);
        assert!(out.contains("\nmain number:      0301234\n"), "{out}");
        assert!(out.contains("\nchannels:         4 (1 busy)\n"), "{out}");
        assert!(out.contains("\nallowed networks: any\n"), "{out}");
        assert!(
            out.contains(
                "caller-ID rules:  #1 every call -> 0301234; #7 calls to 030... -> 0301235\n"
            ),
            "{out}"
        );
        assert!(out.contains("\nlog-ons:          alice, bob\n"), "{out}");
    }

    #[test]
    fn numbers_and_log_ons() {
        let numbers = json!([
            {"number": "0301234", "account_id": 3, "account": "shop", "role": "main", "log_ons": ["alice"]},
            {"number": "0309999", "account_id": null, "account": null, "role": null, "log_ons": []}
        ]);
        let (out, calls) = run_script("number list --free", vec![numbers]);
        assert_eq!(calls[0].1, "/api/v1/numbers?free=true");
        assert_eq!(
            out,
            "NUMBER   ACCOUNT   ROLE  LOG-ONS\n\
             0301234  3 (shop)  main  alice\n\
             0309999  -         free  -\n"
        );
        let (out, calls) = run_script("number create 0309999", vec![json!({"number": "0309999"})]);
        assert_eq!(calls[0].2, Some(json!({"number": "0309999"})));
        assert_eq!(out, "number 0309999 created (free)\n");

        let alice = json!({
            "id": 1, "user": "alice", "number": "0301234", "account_id": 3, "account": "shop",
            "profile": null, "source": "api", "bindings": 2, "licence": true,
            "created_at": "2024-01-01T00:00:00Z"
        });
        let (out, calls) = run_script(
            "logon create --user alice --password pw --number 0301234",
            vec![alice.clone()],
        );
        assert_eq!(
            calls[0].2,
            Some(json!({"user": "alice", "password": "pw", "number": "0301234"}))
        );
        assert_eq!(
            out,
            "log-on \"alice\" created on number 0301234 of account 3 (shop), profile default\n"
        );
        let (_, calls) = run_script(
            "logon update a/b --no-profile --password x",
            vec![alice.clone()],
        );
        assert_eq!(calls[0].0, "PATCH");
        assert_eq!(calls[0].1, "/api/v1/log-ons/a%2Fb");
        assert_eq!(calls[0].2, Some(json!({"password": "x", "profile": null})));
        let (out, _) = run_script("logon delete alice", vec![alice.clone()]);
        assert_eq!(
            out,
            "log-on \"alice\" deleted; 2 registration(s) dropped; its licence was freed\n"
        );
        let (out, _) = run_script("logon list", vec![json!([alice.clone()])]);
        assert_eq!(
            out,
            "USER   NUMBER   ACCOUNT   PROFILE  SOURCE  REGISTRATIONS  LICENCE\n\
             alice  0301234  3 (shop)  default  api     2              yes\n"
        );
        let (out, _) = run_script("logon show alice", vec![alice]);
        assert!(out.starts_with("user:          alice\n"), "{out}");
    }

    #[test]
    fn password_options() {
        assert!(
            parse("logon create --user a --number 1").is_err(),
            "needs a password"
        );
        assert!(parse("logon create --user a --number 1 --password x --password-file f").is_err());
        assert!(parse("logon update a --password x --password-file f").is_err());
        assert!(
            parse("logon update a --password-file f").is_ok(),
            "a change"
        );
        let c = parse("logon create --user a --number 1 --password -").unwrap();
        assert!(matches!(
            c,
            AdminCommand::Logon {
                command: LogonCommand::Create { password: Some(ref p), password_file: None, .. },
                ..
            } if p == "-"
        ));
        let help = {
            use clap::CommandFactory;
            let mut cli = Cli::command();
            let logon = cli.find_subcommand_mut("logon").unwrap();
            let create = logon.find_subcommand_mut("create").unwrap();
            create.render_long_help().to_string()
        };
        assert!(
            help.contains("`-` reads it from the first line of standard input"),
            "{help}"
        );
        assert!(help.contains("--password-file <FILE>"), "{help}");
    }

    #[test]
    fn first_line_of_input() {
        for (text, line) in [
            ("s3cret\nignored\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            (" two words \n", " two words "),
            ("\nsecond", ""),
            ("", ""),
        ] {
            assert_eq!(first_line(text.as_bytes()).unwrap(), line, "{text:?}");
        }
        assert!(first_line(&b"\xff\xfe\n"[..]).is_err(), "not UTF-8");
        let long = "x".repeat(100_000);
        assert_eq!(
            first_line(long.as_bytes()).unwrap().len() as u64,
            MAX_LINE,
            "cut off"
        );
    }

    #[test]
    fn passwords_from_stdin_or_a_file() {
        let alice =
            json!({"user": "alice", "number": "0301234", "account_id": 3, "account": "shop"});
        // `-`: the first line of standard input, without its line ending.
        let mut input = Typed::stdin("s3cret pw\nnext line\n");
        let (out, calls) = run_with_input(
            &[
                "logon",
                "create",
                "--user",
                "alice",
                "--password",
                "-",
                "--number",
                "0301234",
            ],
            &mut input,
            vec![alice.clone()],
        );
        assert!(out.unwrap().starts_with("log-on \"alice\" created"));
        assert_eq!(
            calls[0].2,
            Some(json!({"user": "alice", "password": "s3cret pw", "number": "0301234"}))
        );
        assert_eq!(
            input.prompts,
            ["password for log-on \"alice\" (shown as typed; end with Enter): "]
        );
        let (out, calls) = run_with_input(
            &["logon", "update", "alice", "--password", "-"],
            &mut Typed::stdin("n3w\r\n"),
            vec![alice.clone()],
        );
        assert!(out.unwrap().ends_with(", new password\n"));
        assert_eq!(calls[0].2, Some(json!({"password": "n3w"})));

        // --password-file: its first line.
        let (out, calls) = run_with_input(
            &["logon", "update", "alice", "--password-file", "/run/pw"],
            &mut Typed::file("/run/pw", "fr0m-file\n"),
            vec![alice.clone()],
        );
        assert!(out.is_ok());
        assert_eq!(calls[0].2, Some(json!({"password": "fr0m-file"})));
        let (_, calls) = run_with_input(
            &[
                "logon",
                "create",
                "--user",
                "alice",
                "--number",
                "1",
                "--password-file",
                "/run/pw",
            ],
            &mut Typed::file("/run/pw", "fr0m-file"),
            vec![alice.clone()],
        );
        assert_eq!(calls[0].2.as_ref().unwrap()["password"], "fr0m-file");

        // Nothing to read: refused before the API is asked, as a usage error.
        for (args, mut input, message) in [
            (
                vec!["logon", "create", "--user", "a", "--number", "1", "--password", "-"],
                Typed::default(),
                "mgw: --password -: the first line of standard input is empty; it must hold the password (the line ending is not part of it)\n",
            ),
            (
                vec!["logon", "update", "a", "--password", "-"],
                Typed::stdin("\nsecond line"),
                "mgw: --password -: the first line of standard input is empty; it must hold the password (the line ending is not part of it)\n",
            ),
            (
                vec!["logon", "update", "a", "--password", "-"],
                Typed {
                    stdin: vec![b's', 0xff, b'\n'],
                    ..Typed::default()
                },
                "mgw: --password -: cannot read standard input: stream did not contain valid UTF-8\n",
            ),
            (
                vec!["logon", "update", "a", "--password-file", "/run/pw"],
                Typed::file("/run/pw", "\n"),
                "mgw: --password-file /run/pw: its first line is empty; it must hold the password (the line ending is not part of it)\n",
            ),
            (
                vec!["logon", "update", "a", "--password-file", "/gone"],
                Typed::default(),
                "mgw: --password-file /gone: cannot read it: entity not found\n",
            ),
        ] {
            let (out, calls) = run_with_input(&args, &mut input, vec![alice.clone()]);
            let failure = out.unwrap_err();
            assert_eq!(failure.exit_code(), 2, "{args:?}");
            assert_eq!(failure.render(), message, "{args:?}");
            assert!(calls.is_empty(), "{args:?}: {calls:?}");
        }
        // A password given on the command line is sent as it is (one starting with `-` needs
        // the `=` form).
        let (_, calls) = run_with_input(
            &["logon", "update", "alice", "--password=-x"],
            &mut Typed::default(),
            vec![alice],
        );
        assert_eq!(calls[0].2, Some(json!({"password": "-x"})));
    }

    #[test]
    fn profile_update_fills_in_the_bounds_not_given() {
        let current = json!({"name": "desk", "min_expires": 60, "max_expires": 3600, "default_expires": 600, "log_ons": 0});
        let updated = json!({"name": "desk", "min_expires": 60, "max_expires": 7200, "default_expires": 600, "log_ons": 0});
        let (out, calls) = run_script(
            "profile update desk --max 7200",
            vec![current, updated.clone()],
        );
        assert_eq!(
            calls[0],
            ("GET".into(), "/api/v1/profiles/desk".into(), None)
        );
        assert_eq!(
            calls[1],
            (
                "PUT".into(),
                "/api/v1/profiles/desk".into(),
                Some(
                    json!({"name": "desk", "min_expires": 60, "max_expires": 7200, "default_expires": 600})
                )
            )
        );
        assert!(
            out.starts_with("profile \"desk\" updated (min 60s, default 600s, max 7200s)"),
            "{out}"
        );
        // All three given: no need to read first.
        let (_, calls) = run_script(
            "profile update desk --min 1 --max 2 --default 2",
            vec![updated.clone()],
        );
        assert_eq!(calls.len(), 1);
        let (out, calls) = run_script(
            "profile create desk --min 60 --max 7200 --default 600",
            vec![updated.clone()],
        );
        assert_eq!(
            calls[0].2,
            Some(
                json!({"name": "desk", "min_expires": 60, "max_expires": 7200, "default_expires": 600})
            )
        );
        assert_eq!(
            out,
            "profile \"desk\" created (min 60s, default 600s, max 7200s)\n"
        );
        let (out, _) = run_script("profile list", vec![json!([updated])]);
        assert_eq!(
            out,
            "NAME  MIN  DEFAULT  MAX    LOG-ONS\ndesk  60s  600s     7200s  0\n"
        );
    }

    #[test]
    fn licences() {
        let status = json!({
            "total": 10, "in_use": 1, "free": 9, "logged_on": 2, "last_reset": null,
            "holders": [{"user": "alice", "number": "0301234", "since": "2024-01-01T10:00:00Z", "since_unix": 1}]
        });
        let (out, _) = run_script("licence status", vec![status.clone()]);
        assert_eq!(
            out,
            "Licences: 1 of 10 in use (9 free)\n\
             Logged-on subscribers: 2; last reset: never\n\
             USER   NUMBER   SINCE\n\
             alice  0301234  2024-01-01T10:00:00Z\n"
        );
        let (out, calls) = run_script(
            "licence reset",
            vec![
                json!({"freed": 1, "users": ["alice"], "status": {"total": 10, "in_use": 0, "free": 10}}),
            ],
        );
        assert_eq!(
            calls[0],
            ("POST".into(), "/api/v1/licences/reset".into(), None)
        );
        assert_eq!(
            out,
            "licences reset: 1 freed (alice); Licences: 0 of 10 in use (10 free)\n"
        );
        let (out, calls) = run_script("licence set-total 20", vec![status]);
        assert_eq!(
            calls[0],
            (
                "PUT".into(),
                "/api/v1/licences".into(),
                Some(json!({"total": 20}))
            )
        );
        assert_eq!(
            out,
            "licence total set to 20; Licences: 1 of 10 in use (9 free)\n"
        );
    }

    #[test]
    fn registrations_and_cdrs() {
        let regs = json!([{
            "user": "alice", "number": "0301234", "contact": "sip:alice@10.0.0.5:5060",
            "source": "10.0.0.5:5060", "transport": "udp", "expires_in": 3540,
            "user_agent": "Phone\u{1b}[31m 1.0"
        }]);
        let (out, calls) = run_script("registrations --user a+b", vec![regs.clone()]);
        assert_eq!(calls[0].1, "/api/v1/registrations?user=a%2Bb");
        assert_eq!(
            out,
            "USER   NUMBER   CONTACT                  SOURCE         TRANSPORT  EXPIRES_IN  USER_AGENT\n\
             alice  0301234  sip:alice@10.0.0.5:5060  10.0.0.5:5060  udp        3540s       Phone?[31m 1.0\n"
        );
        let (out, _) = run_script("registrations", vec![json!([])]);
        assert_eq!(out, "no registrations\n");
        let (out, _) = run_script("registrations --json", vec![json!([])]);
        assert_eq!(out, "[]\n");
        let (out, calls) = run_script(
            "registrations drop alice",
            vec![json!({"user": "alice", "dropped": 2})],
        );
        assert_eq!(
            calls[0],
            ("DELETE".into(), "/api/v1/registrations/alice".into(), None)
        );
        assert_eq!(out, "log-on \"alice\": 2 registration(s) dropped\n");

        let cdrs = json!([
            {"id": 2, "account_id": 3, "caller": "0301234", "callee": "112", "direction": "out",
             "started_at": "S", "answered_at": "A", "ended_at": "E", "duration_s": 61, "cause": "normal", "status": 200},
            {"id": 1, "account_id": null, "caller": "x", "callee": "y", "direction": "inbound",
             "trunk": "pri1", "started_at": "S", "answered_at": null, "ended_at": "E", "duration_s": 0, "cause": "busy", "status": 486}
        ]);
        let (_, calls) = run_script(
            "cdrs --limit 2 --caller +4930 --status 486",
            vec![cdrs.clone()],
        );
        assert_eq!(calls[0].1, "/api/v1/cdrs?limit=2&caller=%2B4930&status=486");
        let active = json!([{"id": "c0w1", "account_id": 3, "caller": "200", "dialled": "201",
            "callee": "201", "state": "answered", "started_at": "S", "duration_s": 12}]);
        let (out, calls) = run_script("calls", vec![active]);
        assert_eq!(calls[0].1, "/api/v1/calls");
        assert!(
            out.contains("c0w1") && out.contains("answered") && out.contains("12s"),
            "{out}"
        );
        let (out, calls) = run_script("cdrs --limit 2", vec![cdrs.clone()]);
        assert_eq!(calls[0].1, "/api/v1/cdrs?limit=2");
        assert_eq!(
            out,
            "ID  ACCOUNT  STARTED  CALLER   CALLEE  DIRECTION  TRUNK  DURATION      CAUSE   STATUS\n\
             2   3        S        0301234  112     out        -      61s           normal  200\n\
             1   -        S        x        y       inbound    pri1   not answered  busy    486\n"
        );
        let (out, calls) = run_script("account cdrs shop", vec![cdrs]);
        assert_eq!(calls[0].1, "/api/v1/accounts/shop/cdrs");
        assert!(out.starts_with("ID  STARTED"), "{out}");
    }

    #[test]
    fn odd_server_answers_do_not_panic() {
        let odd = [
            json!(null),
            json!("text"),
            json!(42),
            json!({}),
            json!([1, null, "x", {"id": [], "channels": "lots", "log_ons": {"a": 1}}]),
            json!({"holders": "none", "caller_id_rules": [{"prefix": 5}], "status": []}),
        ];
        let commands = [
            "account list",
            "account show 1",
            "account disable 1",
            "account delete 1",
            "account add-caller-id 1 --present 2",
            "account cdrs 1",
            "number list",
            "number show 1",
            "logon list",
            "logon show u",
            "logon delete u",
            "profile list",
            "profile update p --min 1",
            "licence status",
            "licence reset",
            "registrations",
            "registrations drop u",
            "cdrs",
        ];
        for v in &odd {
            for args in commands {
                let command = parse(args).unwrap();
                let mut script = Script::answering(vec![v.clone(), v.clone()]);
                assert!(
                    execute(&command, &mut script, &mut Typed::default()).is_ok(),
                    "{args:?} on {v}"
                );
            }
        }
    }

    #[test]
    fn transport_failures_propagate() {
        let command = parse("account list").unwrap();
        let refused = Failure::Unreachable {
            url: "http://127.0.0.1:1".into(),
            error: "Connection refused (os error 111)".into(),
        };
        let mut script = Script {
            calls: Vec::new(),
            answers: VecDeque::from([Err(refused.clone())]),
        };
        assert_eq!(
            execute(&command, &mut script, &mut Typed::default()),
            Err(refused)
        );
    }

    #[test]
    fn failure_messages() {
        let api = |status: u16, body: &str| Failure::Api {
            url: "http://127.0.0.1:8080".into(),
            status,
            reason: "Reason".into(),
            body: body.as_bytes().to_vec(),
        };
        let conflict = api(
            409,
            r#"{"error":"account 3 (\"shop\") cannot be deleted: x; y","fix":"resolve every blocker listed, then delete again","blockers":["the account is enabled","extra numbers are linked: 0301235"]}"#,
        );
        assert_eq!(conflict.exit_code(), 1);
        assert_eq!(
            conflict.render(),
            "mgw: account 3 (\"shop\") cannot be deleted: x; y\n\
             \x20 fix: resolve every blocker listed, then delete again\n\
             \x20 blocker: the account is enabled\n\
             \x20 blocker: extra numbers are linked: 0301235\n"
        );
        let unauthorized = api(
            401,
            r#"{"error":"missing or invalid bearer token","fix":"send the header"}"#,
        )
        .render();
        assert!(unauthorized.starts_with("mgw: the admin API at http://127.0.0.1:8080 refused the token: missing or invalid bearer token\n"), "{unauthorized}");
        assert!(
            unauthorized.contains("--token TOKEN or MGW_TOKEN=TOKEN"),
            "{unauthorized}"
        );
        assert!(!unauthorized.contains("send the header"), "{unauthorized}");
        assert_eq!(
            api(502, "<html>\nBad gateway</html>").render(),
            "mgw: the admin API at http://127.0.0.1:8080 answered 502 Reason: <html>?Bad gateway</html>\n"
        );
        assert_eq!(
            api(500, "").render(),
            "mgw: the admin API at http://127.0.0.1:8080 answered 500 Reason\n"
        );
        let long = api(500, &"x".repeat(500)).render();
        assert!(long.ends_with("...\n") && long.len() < 300, "{long}");
        let unreachable = Failure::Unreachable {
            url: "http://127.0.0.1:1".into(),
            error: "Connection refused (os error 111)".into(),
        };
        assert_eq!(
            unreachable.render(),
            "mgw: cannot reach the admin API at http://127.0.0.1:1: Connection refused (os error 111); is mgw serve running? (set --api or MGW_API)\n"
        );
        assert_eq!(unreachable.exit_code(), 1);
        assert_eq!(Failure::Config("x".into()).exit_code(), 2);
        assert_eq!(Failure::Config("x".into()).render(), "mgw: config: x\n");
        assert_eq!(Failure::Usage("bad".into()).exit_code(), 2);
    }

    #[test]
    fn where_to_connect_and_with_which_token() {
        let no_env = |_: &str| None;
        let no_config = |p: &Path| -> Result<Config, ConfigError> {
            panic!("config {} read although not needed", p.display())
        };
        let opts = |api: Option<&str>, token: Option<&str>, config: Option<&str>| ApiOpts {
            api: api.map(str::to_string),
            token: token.map(str::to_string),
            config: config.map(PathBuf::from),
            json: false,
        };
        let mut config = Config::default();
        config.admin.listen = "0.0.0.0:9090".parse().unwrap();
        config.admin.token = "from-config".into();
        let with_config = |_: &Path| -> Result<Config, ConfigError> { Ok(config.clone()) };
        let env = |name: &str| match name {
            ENV_API => Some("http://10.1.1.1:7000".to_string()),
            ENV_TOKEN => Some("from-env".to_string()),
            _ => None,
        };
        let resolved = |t: Target| (t.endpoint.url().to_string(), t.token);

        // Defaults.
        let t = resolve(&opts(None, None, None), &no_env, &no_config).unwrap();
        assert_eq!(
            resolved(t),
            ("http://127.0.0.1:8080".into(), "change-me".into())
        );
        // Options beat everything; the config is not read when not needed.
        let t = resolve(
            &opts(Some("h:1"), Some("opt"), Some("x.toml")),
            &env,
            &no_config,
        )
        .unwrap();
        assert_eq!(resolved(t), ("http://h:1".into(), "opt".into()));
        let t = resolve(&opts(None, None, Some("x.toml")), &env, &no_config).unwrap();
        assert_eq!(
            resolved(t),
            ("http://10.1.1.1:7000".into(), "from-env".into())
        );
        // The config fills the gaps; a wildcard listen address means this host.
        let t = resolve(&opts(None, None, Some("x.toml")), &no_env, &with_config).unwrap();
        assert_eq!(
            resolved(t),
            ("http://127.0.0.1:9090".into(), "from-config".into())
        );
        let t = resolve(
            &opts(Some("h:1"), None, Some("x.toml")),
            &no_env,
            &with_config,
        )
        .unwrap();
        assert_eq!(resolved(t), ("http://h:1".into(), "from-config".into()));
        config.admin.listen = "[::]:9090".parse().unwrap();
        let with_v6 = |_: &Path| -> Result<Config, ConfigError> { Ok(config.clone()) };
        let t = resolve(&opts(None, Some("x"), Some("x.toml")), &no_env, &with_v6).unwrap();
        assert_eq!(t.endpoint.url(), "http://[::1]:9090");
        // Empty environment variables count as unset.
        let empty_env = |_: &str| Some(String::new());
        let t = resolve(&opts(None, None, None), &empty_env, &no_config).unwrap();
        assert_eq!(
            resolved(t),
            ("http://127.0.0.1:8080".into(), "change-me".into())
        );

        let broken = |p: &Path| -> Result<Config, ConfigError> {
            Err(ConfigError::Read {
                path: p.to_path_buf(),
                error: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        };
        let e = resolve(&opts(None, None, Some("gone.toml")), &no_env, &broken).unwrap_err();
        assert!(
            matches!(&e, Failure::Config(m) if m.contains("gone.toml")),
            "{e:?}"
        );
        assert_eq!(e.exit_code(), 2);
        let e = resolve(&opts(Some("https://h"), None, None), &no_env, &no_config).unwrap_err();
        assert!(matches!(e, Failure::Usage(_)));
        for bad in ["a\r\nX-Evil: 1", "a b", ""] {
            assert!(
                resolve(&opts(None, Some(bad), None), &no_env, &no_config).is_err(),
                "{bad:?}"
            );
        }
    }
}
