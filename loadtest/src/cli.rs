//! Command line: `mgw-loadtest register --target HOST:PORT --users FILE.csv --rate N --count M`
//! `mgw-loadtest rtp --ng IP:PORT --streams N --duration S` and
//! `mgw-loadtest floor --ng IP:PORT --ports FIRST-LAST`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::codecs::Codec;

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
    /// The bare recvmmsg/sendmmsg relay, driven over ng like mgw: the CPU floor per packet.
    Floor(FloorArgs),
    /// Whole calls, caller and callee: INVITE -> 407 -> INVITE with digest -> 200 -> ACK ->
    /// hold -> BYE -> 200, paced open-loop.
    Call(crate::call::CallArgs),
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

    /// Threads sending and receiving media; streams are dealt out among them.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// UDP sockets per side and thread that the endpoints share (a turn then moves many
    /// packets per system call); 0 gives every endpoint its own port, as separate phones have.
    #[arg(long, default_value_t = 1)]
    pub sockets: usize,

    /// Shortest sleep between turns, in microseconds: packets due meanwhile leave together, up
    /// to this late. Latency is taken from kernel arrival timestamps, so reading in batches
    /// does not add to it.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    pub tick_us: u64,

    /// Spin instead of sleeping for the last microseconds before a send is due: sleeps on a VM
    /// can end a millisecond or more late, and each late turn sends a burst. 0: always sleep.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub spin_us: u64,

    /// The relay's process id: its CPU over the media phase (not the ng set-up and tear-down)
    /// is reported, from /proc.
    #[arg(long)]
    pub relay_pid: Option<u32>,

    /// What the offerer (A) sends.
    #[arg(long, value_enum, default_value_t = Codec::Pcmu)]
    pub codec_a: Codec,

    /// What the answerer (B) sends and accepts [default: --codec-a]. When it differs, the
    /// offer asks the relay to transcode (ng `codec: {transcode: [..]}`).
    #[arg(long, value_enum)]
    pub codec_b: Option<Codec>,
}

#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// Where to listen for ng commands, IP:PORT.
    #[arg(long)]
    pub ng: String,

    /// Media ports to allocate from, FIRST-LAST (two per call).
    #[arg(long, default_value = "50000-59999")]
    pub ports: String,

    /// Address to bind media ports on and to write into SDP.
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
