//! Command line: `mgw serve`, `mgw config default|check`, `mgw --version`,
//! and the admin subcommands (`mgw account|number|logon|profile|licence|
//! registrations|cdrs`, see [`crate::admin_cli`]) that drive a running gateway
//! through its admin API.
//!
//! Exit status: 0 success; 2 the config (or what it names: store dir,
//! listen ports, files) is unusable, with one line `mgw: ...` on stderr;
//! 1 any other failure.

use crate::admin::AdminHandle;
use crate::config::{Config, Listener, Transport, DEFAULT_TOML};
use crate::gateway::{self, GatewayHandle};
use crate::logger::Logger;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status for an unusable configuration.
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "mgw",
    version,
    about = "mgw: SIP media gateway for a PBX (registrar, call switch, RTP relay)",
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the gateway (on the embedded default configuration unless --config is given)
    Serve {
        /// TOML configuration file
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print or check configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    #[command(flatten)]
    Admin(crate::admin_cli::AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded default configuration (a commented TOML file)
    Default,
    /// Validate a configuration file: prints "ok", or one line naming the problem and exits 2
    Check {
        /// TOML configuration file
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{DEFAULT_TOML}");
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match Config::load(Some(&config)) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => config_failure(&e),
        },
        Command::Admin(command) => crate::admin_cli::run(&command),
    }
}

fn config_failure(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mgw: config: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn startup_failure(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mgw: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// `mgw serve`: runs until SIGTERM or SIGINT.
pub fn serve(config_path: Option<&Path>) -> ExitCode {
    // Before any worker thread exists (see alloc.rs for the measured reason).
    crate::alloc::tune();
    use signal_hook::consts::{SIGINT, SIGTERM};
    // Take over the signals first: from here on SIGTERM means "shut down
    // cleanly", not the default instant death.
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mgw: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };

    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => return config_failure(&e),
    };
    Logger::new(
        config.log.level.to_filter(),
        std::env::var("RUST_LOG").ok().as_deref(),
    )
    .install();
    crate::logger::hold();

    if let Err(e) = config.prepare_store_dir() {
        crate::logger::discard();
        return config_failure(&e);
    }
    let admin = match AdminHandle::start_from_config(&config.admin) {
        Ok(a) => a,
        Err(e) => {
            crate::logger::discard();
            return config_failure(&e);
        }
    };
    if config.admin.uses_default_token() {
        log::warn!(
            "[admin] token is the default {:?}: anyone who can reach {} has admin rights; set [admin] token in a config file",
            config.admin.token,
            admin.url()
        );
    }
    let gateway = match gateway::run_gateway(&config, &admin) {
        Ok(g) => g,
        Err(e) => {
            admin.shutdown();
            crate::logger::discard();
            return startup_failure(&e);
        }
    };
    crate::logger::release();
    admin.set_ready(true);
    print_banner(&config, config_path, admin.local_addr());

    let signal = signals.forever().next();
    log::info!(
        "{}: shutting down",
        match signal {
            Some(SIGINT) => "SIGINT",
            _ => "SIGTERM",
        }
    );
    // A second signal while shutdown hangs means "stop now".
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("mgw: second signal during shutdown; exiting without a clean shutdown");
            std::process::exit(130);
        }
    });
    shutdown(&admin, gateway)
}

fn shutdown(admin: &AdminHandle, gateway: GatewayHandle) -> ExitCode {
    // Tell load balancers first, then stop the work, then stop answering.
    admin.set_ready(false);
    let result = gateway.shutdown();
    admin.shutdown();
    match result {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mgw: shutdown: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a newcomer needs after `mgw serve`: where it listens and how to
/// register a first phone.
pub fn banner(config: &Config, config_path: Option<&Path>, admin: SocketAddr) -> String {
    let mut b = String::new();
    let source = config_path.map_or_else(
        || "embedded default configuration".to_string(),
        |p| p.display().to_string(),
    );
    b.push_str(&format!(
        "mgw {} running ({source})\n",
        env!("CARGO_PKG_VERSION")
    ));
    let listeners: Vec<String> = config.sip.listen.iter().map(Listener::to_string).collect();
    b.push_str(&format!(
        "  SIP       {}  (domain {})\n",
        listeners.join("  "),
        config.sip.domain
    ));
    b.push_str(&format!(
        "  admin     http://{admin}  (GET /health, GET /metrics, /api/v1/... with \"Authorization: Bearer TOKEN\")\n"
    ));
    b.push_str(&format!("  store     {}\n", config.store.dir.display()));
    b.push_str(&format!("  licences  {}\n", config.licences.total));
    let m = &config.media;
    b.push_str(&format!(
        "  media     RTP ports {}, SDP address {}{}{}\n",
        m.rtp_ports,
        m.advertised(),
        m.ng_listen
            .map(|a| format!(", rtpengine ng on udp:{a}"))
            .unwrap_or_default(),
        if m.advertise.is_none() && m.bind.is_unspecified() {
            " (the host's primary address; behind NAT set [media] advertise to the address phones reach)"
        } else {
            ""
        }
    ));

    b.push_str("To register a first phone:\n");
    match &config.accounts.import_csv {
        Some(csv) => b.push_str(&format!(
            "  1. accounts come from {} (header user,password,number[,channels]); add a line there for the phone\n",
            csv.display()
        )),
        None => b.push_str(
            "  1. create an account and a log-on (in another shell; add --token TOKEN unless it is the default):\n     \
             mgw account create --name office --main-number 100 && mgw account enable office\n     \
             mgw logon create --user alice --password - --number 100   (password on stdin)\n     \
             or import many: a CSV with header user,password,number[,channels] as [accounts] import_csv\n",
        ),
    }
    let (registrar, transports) = registrar_hint(&config.sip.listen);
    b.push_str(&format!(
        "  2. in the phone: registrar/proxy {registrar} ({transports}), domain/realm {}, that user name and password\n",
        config.sip.domain
    ));
    for l in &config.isdn {
        let p = l.prefix.as_deref().unwrap_or("");
        b.push_str(&format!(
            "Simulated ISDN line {} ({}) to a simulated PSTN; from a phone dial:\n  \
             {p}5551000 echoes your voice back   {p}5551004 plays a 1 kHz tone   \
             {p}5551001 busy   {p}5551002 rings, no answer   {p}5551003 unallocated\n",
            l.name,
            l.kind.as_str(),
        ));
        if l.prefix.is_none() {
            b.push_str("  (no [[isdn]] prefix is set: add prefix = \"0\" to dial out)\n");
        }
    }
    for d in &config.dect {
        let numbers: Vec<&str> = d.handsets.iter().map(|h| h.number.as_str()).collect();
        if !numbers.is_empty() {
            b.push_str(&format!(
                "Simulated DECT base station {} with handsets {}: dial one (as configured, a handset answers by itself and echoes)\n",
                d.name,
                numbers.join(", ")
            ));
        }
    }
    b.push_str("Stop with Ctrl-C or SIGTERM.\n");
    b
}

fn registrar_hint(listen: &[Listener]) -> (String, String) {
    let Some(first) = listen
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .or(listen.first())
    else {
        return ("(no SIP listener)".to_string(), String::new());
    };
    let port = first.addr.port();
    let host = if first.addr.ip().is_unspecified() {
        crate::config::primary_address().to_string()
    } else {
        first.addr.ip().to_string()
    };
    let registrar = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut transports: Vec<&str> = listen
        .iter()
        .filter(|l| l.addr.port() == port)
        .map(|l| l.transport.as_str())
        .collect();
    transports.dedup();
    (registrar, transports.join(" or "))
}

fn print_banner(config: &Config, config_path: Option<&Path>, admin: SocketAddr) {
    let mut out = std::io::stdout().lock();
    // stdout may be a closed pipe; the banner is informational only.
    let _ = out.write_all(banner(config, config_path, admin).as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_commands() {
        let c = Cli::try_parse_from(["mgw", "serve"]).expect("serve");
        assert!(matches!(c.command, Command::Serve { config: None }));
        let c =
            Cli::try_parse_from(["mgw", "serve", "--config", "x.toml"]).expect("serve --config");
        assert!(
            matches!(c.command, Command::Serve { config: Some(p) } if p == Path::new("x.toml"))
        );
        let c = Cli::try_parse_from(["mgw", "config", "default"]).expect("config default");
        assert!(matches!(
            c.command,
            Command::Config {
                command: ConfigCommand::Default
            }
        ));
        let c = Cli::try_parse_from(["mgw", "config", "check", "--config", "x.toml"])
            .expect("config check");
        assert!(matches!(
            c.command,
            Command::Config {
                command: ConfigCommand::Check { .. }
            }
        ));
        assert!(
            Cli::try_parse_from(["mgw", "config", "check"]).is_err(),
            "check needs --config"
        );
        assert!(Cli::try_parse_from(["mgw", "frobnicate"]).is_err());
    }

    #[test]
    fn banner_tells_how_to_register() {
        let config = Config::default();
        let b = banner(&config, None, "127.0.0.1:8080".parse().expect("addr"));
        assert!(b.contains("udp:0.0.0.0:5060  tcp:0.0.0.0:5060"), "{b}");
        assert!(b.contains("http://127.0.0.1:8080"), "{b}");
        let host = crate::config::primary_address();
        assert!(b.contains(&format!("{host}:5060 (udp or tcp)")), "{b}");
        assert!(b.contains("domain/realm mgw.local"), "{b}");
        assert!(b.contains("import_csv"), "{b}");
        assert!(
            b.contains(&format!(
                "RTP ports 30000-39999, SDP address {host} (the host's primary address; behind NAT set [media] advertise"
            )),
            "{b}"
        );

        let mut config = Config::from_toml_str(
            "[sip]\nlisten = [\"tcp:[::1]:15060\", \"udp:[::1]:15060\"]\n[accounts]\nimport_csv = \"/tmp/u.csv\"",
        )
        .expect("config");
        config.sip.domain = "mgw.test".into();
        let b = banner(
            &config,
            Some(Path::new("t.toml")),
            "127.0.0.1:1".parse().expect("addr"),
        );
        assert!(b.contains("(t.toml)"), "{b}");
        assert!(b.contains("[::1]:15060 (tcp or udp)"), "{b}");
        assert!(b.contains("accounts come from /tmp/u.csv"), "{b}");
    }
}
