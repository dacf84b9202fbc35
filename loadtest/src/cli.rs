//! Command line: `mgw-loadtest register --target HOST:PORT --users FILE.csv --rate N --count M`
//! and `mgw-loadtest rtp --ng IP:PORT --streams N --duration S`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mgw-loadtest",
    version,
    about = "SIP load generator: paced REGISTER + digest flows, one JSON summary line on stdout"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// REGISTER -> 401/407 -> REGISTER with digest credentials -> 200, paced open-loop.
    Register(RegisterArgs),
    /// RTP streams through an ng-controlled relay (mgw or rtpengine): loss and latency.
    Rtp(RtpArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RtpArgs {
    /// The relay's ng control address, IP:PORT.
    #[arg(long)]
    pub ng: String,

    /// Simultaneous streams (calls); each has two directions.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,

    /// Packets per second per direction (50 = 20 ms G.711).
    #[arg(long, default_value_t = 50)]
    pub pps: u32,

    /// Seconds of media.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,

    /// Local address of the endpoints' sockets.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Udp,
}

#[derive(Args, Debug, Clone)]
pub struct RegisterArgs {
    /// The registrar, HOST:PORT (HOST may be a name; the first address it resolves to is used).
    #[arg(long)]
    pub target: String,

    /// CSV with the header `user,password,number[,channels]`, one SIP log-on per line.
    #[arg(long)]
    pub users: PathBuf,

    /// New flows started per second, whatever the server answers (open loop).
    #[arg(long, value_parser = positive_rate)]
    pub rate: f64,

    /// Flows to start in total; users are taken round-robin, so this may exceed their number.
    #[arg(long)]
    pub count: u64,

    /// Only UDP is implemented.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,

    /// Domain of the Request-URI, From and To [default: the target's host].
    #[arg(long)]
    pub domain: Option<String>,

    /// Expires of the binding, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub expires: u32,

    /// Source sockets (local ports); a server with SO_REUSEPORT workers spreads them by 4-tuple.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub sockets: u16,

    /// Seconds after which an unfinished flow fails with reason "timeout" [default: 64*T1].
    #[arg(long)]
    pub timeout: Option<f64>,

    /// RFC 3261 T1 in milliseconds (T2 = 8*T1, Timer F = 64*T1); shortened only for tests.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub t1_ms: u64,

    /// Microseconds between turns of the event loop. Answers wait in the socket buffers for
    /// the next turn and are read in batches: a longer tick costs less CPU per flow, and adds up
    /// to one tick to each 401 -> second REGISTER turnaround.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub tick_us: u64,

    /// De-register instead: the same flow with `Expires: 0`.
    #[arg(long)]
    pub unregister: bool,

    /// No progress bar, only the JSON line.
    #[arg(long)]
    pub json_only: bool,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of flows per second"
        )),
    }
}
