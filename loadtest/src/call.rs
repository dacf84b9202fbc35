//! `mgw-loadtest call`: both ends of complete calls through a B2BUA or proxy, on one thread.
//! The callers' sockets and the callee's socket share the event loop of `run.rs` (batched
//! receive, due timers, paced starts, batched send, then sleep until the next tick); the flows
//! themselves are in `callflow.rs`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::callflow::{Calls, Config, UasStats};
use crate::pacing::Pacer;
use crate::run::{entropy, resolve};
use crate::socket::{self, Receiver, Sender};
use crate::users;

/// Calls started per turn at most, so a backlog (after a stall) does not starve receiving.
const START_BUDGET: u64 = 256;
/// Longest sleep when nothing is in flight.
const MAX_SLEEP_NS: u64 = 100_000_000;
/// After the last caller is done, how long the callee still waits for BYEs the server has yet
/// to pass on.
const DRAIN_NS: u64 = 2_000_000_000;

#[derive(Args, Debug, Clone)]
pub struct CallArgs {
    /// The server (B2BUA or proxy), HOST:PORT. Callers send every request there; the callee
    /// answers what comes from there.
    #[arg(long)]
    pub target: String,

    /// The callers' log-ons: CSV with the header `user,password,number[,channels]`, taken
    /// round-robin. Used when the server challenges the INVITE.
    #[arg(long)]
    pub users: PathBuf,

    /// New calls per second, whatever the server answers (open loop).
    #[arg(long, value_parser = positive_rate)]
    pub rate: f64,

    /// Calls to place in total.
    #[arg(long)]
    pub count: u64,

    /// The number dialled: user part of the Request-URI and To.
    #[arg(long, default_value = "service")]
    pub callee: String,

    /// Domain of the Request-URI, From and To [default: the target's host].
    #[arg(long)]
    pub domain: Option<String>,

    /// Request-URI of every INVITE instead of sip:CALLEE@DOMAIN, e.g. the callee's own address
    /// for a proxy that routes by it.
    #[arg(long)]
    pub request_uri: Option<String>,

    /// Milliseconds from the caller's ACK to its BYE.
    #[arg(long, default_value_t = 1000)]
    pub hold_ms: u64,

    /// Address the callee's socket binds to; the server's dial plan must send calls to
    /// UAS_IP:UAS_PORT.
    #[arg(long, default_value = "127.0.0.1")]
    pub uas_ip: std::net::IpAddr,

    /// Port of the callee's socket.
    #[arg(long, default_value_t = 5093)]
    pub uas_port: u16,

    /// The callee answers 200 at once, without 180 Ringing first.
    #[arg(long)]
    pub no_ringing: bool,

    /// Caller sockets (local ports); a server with SO_REUSEPORT workers spreads them by 4-tuple.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub sockets: u16,

    /// Seconds after which an INVITE without a final answer fails [default: 64*T1].
    #[arg(long)]
    pub timeout: Option<f64>,

    /// RFC 3261 T1 in milliseconds (T2 = 8*T1); shortened only for tests.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub t1_ms: u64,

    /// Microseconds between turns of the event loop (see `register --help`).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub tick_us: u64,

    /// A process of the server under test (repeat for several): its CPU (utime + stime from
    /// /proc) over the run is reported, and per completed call.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of calls per second"
        )),
    }
}

/// The final line.
#[derive(Debug, Serialize)]
pub struct CallSummary {
    pub offered: u64,
    pub ok: u64,
    pub failed: u64,
    pub answered: u64,
    pub retransmissions: u64,
    pub acks_resent: u64,
    pub failed_by_status: BTreeMap<String, u64>,
    pub failed_by_reason: BTreeMap<&'static str, u64>,
    /// The reason phrase of the first failing answer per method and status.
    pub reason_phrases: BTreeMap<String, String>,
    pub elapsed_s: f64,
    pub rate: f64,
    pub offered_rate: f64,
    pub calls_per_s: f64,
    pub hold_ms: u64,
    pub setup_p50_ms: f64,
    pub setup_p90_ms: f64,
    pub setup_p99_ms: f64,
    pub setup_max_ms: f64,
    pub cpu_s: f64,
    pub cpu_us_per_call: f64,
    pub server_pids: Vec<u32>,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_us_per_call: Option<f64>,
    pub uas: UasStats,
    pub uas_live_at_end: u64,
    pub stray_responses: u64,
    pub send_errors: u64,
    pub target: String,
    pub uas_addr: String,
    pub users: usize,
    pub sockets: usize,
    pub in_flight: u64,
    pub interrupted: bool,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU seconds (utime + stime) of the processes, from /proc; `None` if one is gone.
fn server_cpu(pids: &[u32]) -> Option<f64> {
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields are counted after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut f = rest.split_ascii_whitespace().skip(11);
        let utime: u64 = f.next()?.parse().ok()?;
        let stime: u64 = f.next()?.parse().ok()?;
        ticks += utime + stime;
    }
    Some(ticks as f64 / hz)
}

pub fn run(args: &CallArgs) -> Result<CallSummary, String> {
    let text = std::fs::read_to_string(&args.users)
        .map_err(|e| format!("{}: {e}", args.users.display()))?;
    let users = users::parse(&text).map_err(|e| format!("{}: {e}", args.users.display()))?;
    let user_count = users.len();
    let (target, host) = resolve(&args.target)?;
    let mut sockets = socket::open(target, usize::from(args.sockets))
        .map_err(|e| format!("cannot open UDP sockets towards {target}: {e}"))?;
    let uas_addr = SocketAddr::new(args.uas_ip, args.uas_port);
    let uas = socket::open_at(uas_addr, target)
        .map_err(|e| format!("cannot bind the callee's socket {uas_addr}: {e}"))?;
    let locals = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("local address: {e}"))?;
    let uas_local = uas
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?
        .to_string();
    let caller_sockets = sockets.len();
    sockets.push(uas);
    for pid in &args.server_pids {
        if server_cpu(&[*pid]).is_none() {
            return Err(format!("--server-pid {pid}: no such process"));
        }
    }

    let seed = entropy();
    let t1_ns = args.t1_ms * 1_000_000;
    let invite_timeout_ns = match args.timeout {
        Some(s) if s.is_finite() && s > 0.0 => (s * 1e9) as u64,
        Some(s) => {
            return Err(format!(
                "--timeout {s}: expected a positive number of seconds"
            ))
        }
        None => 64 * t1_ns,
    };
    let domain = args.domain.clone().unwrap_or(host);
    let request_uri = args
        .request_uri
        .clone()
        .unwrap_or_else(|| format!("sip:{}@{domain}", args.callee));
    if request_uri.contains(['<', '>', ' ', '\r', '\n']) || !request_uri.starts_with("sip:") {
        return Err(format!(
            "--request-uri {request_uri:?}: expected a plain sip: URI"
        ));
    }
    let mut run = [0u8; 8];
    for (i, c) in run.iter_mut().enumerate() {
        *c = b"0123456789abcdef"[((seed >> (4 * i)) & 15) as usize];
    }
    let mut calls = Calls::new(
        Config {
            run,
            domain,
            request_uri,
            locals,
            uas_local: uas_local.clone(),
            uas_peer: Some(target),
            t1_ns,
            t2_ns: 8 * t1_ns,
            invite_timeout_ns,
            hold_ns: args.hold_ms * 1_000_000,
            ringing: !args.no_ringing,
            user_agent: format!("mgw-loadtest/{}", env!("CARGO_PKG_VERSION")),
        },
        users,
        seed,
    );

    // Ctrl-C or SIGTERM ends the run early, still with its JSON line.
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let mut pacer = Pacer::new(args.rate, args.count);
    let mut rx = Receiver::default();
    let mut tx = Sender::new(sockets.len());
    let server_before = server_cpu(&args.server_pids);
    let cpu_before = socket::cpu_seconds();
    let start = Instant::now();
    let clock = || start.elapsed().as_nanos() as u64;
    let mut last_start = 0;
    let tick = args.tick_us * 1000;
    let mut turn_began = 0;
    let mut callers_done: Option<u64> = None;
    let end = loop {
        for (i, s) in sockets.iter().enumerate() {
            drain(s, &mut rx, &mut tx, &clock, |bytes, now, tx| {
                if i < caller_sockets {
                    calls.on_uac_datagram(i, bytes, now, tx);
                } else {
                    calls.on_uas_datagram(bytes, now, tx);
                }
            })?;
        }
        let now = clock();
        calls.on_timers(now, &mut tx);
        let due = pacer.take_due(now, START_BUDGET);
        for _ in 0..due {
            calls.start_call(now, &mut tx);
        }
        if due > 0 {
            last_start = now;
        }
        tx.flush(&sockets);
        if pacer.done() && calls.active() == 0 {
            let done = *callers_done.get_or_insert(now);
            if calls.live_legs() == 0 || now >= done + DRAIN_NS {
                break now;
            }
        }
        if interrupted.load(Ordering::Relaxed) {
            break now;
        }
        if due == START_BUDGET {
            continue; // behind schedule: no sleeping
        }
        // A plain sleep, never a poll: see run.rs. Answers wait in the socket buffers.
        let tick_end = turn_began + tick;
        let now = clock();
        let busy = calls.active() > 0 || calls.live_legs() > 0;
        let pending = (0..sockets.len()).any(|i| tx.pending(i));
        let wake = if busy || pending {
            tick_end
        } else {
            pacer.next_deadline().unwrap_or(now).max(tick_end)
        };
        let wake = wake.min(now + MAX_SLEEP_NS);
        if wake > now {
            std::thread::sleep(Duration::from_nanos(wake - now));
        }
        turn_began = clock();
    };
    let cpu_s = socket::cpu_seconds() - cpu_before;
    let server_cpu_s = match (server_before, server_cpu(&args.server_pids)) {
        (Some(a), Some(b)) if !args.server_pids.is_empty() => Some(round3(b - a)),
        _ => None,
    };
    let s = &calls.stats;
    let elapsed_s = end as f64 / 1e9;
    let offering_s = last_start as f64 / 1e9;
    let offered_rate = if offering_s > 0.0 {
        s.offered.saturating_sub(1) as f64 / offering_s
    } else {
        0.0
    };
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(CallSummary {
        offered: s.offered,
        ok: s.ok,
        failed: s.failed,
        answered: s.answered,
        retransmissions: s.retransmissions,
        acks_resent: s.acks_resent,
        failed_by_status: s.failed_by_status().clone(),
        failed_by_reason: s.failed_by_reason().clone(),
        reason_phrases: s.reason_phrases().clone(),
        elapsed_s: round3(elapsed_s),
        rate: args.rate,
        offered_rate: round3(offered_rate),
        calls_per_s: if s.offered > 0 {
            round3(offered_rate * s.ok as f64 / s.offered as f64)
        } else {
            0.0
        },
        hold_ms: args.hold_ms,
        setup_p50_ms: ms(s.setup.quantile(0.50)),
        setup_p90_ms: ms(s.setup.quantile(0.90)),
        setup_p99_ms: ms(s.setup.quantile(0.99)),
        setup_max_ms: ms(s.setup.max()),
        cpu_s: round3(cpu_s),
        cpu_us_per_call: if s.offered > 0 {
            round3(cpu_s * 1e6 / s.offered as f64)
        } else {
            0.0
        },
        server_pids: args.server_pids.clone(),
        server_cpu_s,
        server_cpu_us_per_call: server_cpu_s
            .filter(|_| s.ok > 0)
            .map(|c| round3(c * 1e6 / s.ok as f64)),
        uas_live_at_end: calls.live_legs(),
        uas: std::mem::take(&mut calls.uas),
        stray_responses: calls.stats.stray,
        send_errors: tx.errors,
        target: target.to_string(),
        uas_addr: uas_local,
        users: user_count,
        sockets: caller_sockets,
        in_flight: calls.active(),
        interrupted: interrupted.load(Ordering::Relaxed),
    })
}

/// Reads every datagram waiting on `s` and hands each to `handle`.
fn drain(
    s: &UdpSocket,
    rx: &mut Receiver,
    tx: &mut Sender,
    clock: &impl Fn() -> u64,
    mut handle: impl FnMut(&[u8], u64, &mut Sender),
) -> Result<usize, String> {
    let mut total = 0;
    loop {
        match rx.recv(s.as_raw_fd()) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                let now = clock();
                for i in 0..n {
                    handle(rx.datagram(i), now, tx);
                }
                total += n;
                if n < socket::RECV_BATCH {
                    return Ok(total);
                }
            }
            // An ICMP port unreachable for an earlier send, reported once: that datagram is
            // lost like any other, and the timers deal with it.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            Err(e) => return Err(format!("recvmmsg: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_of_this_process() {
        let me = std::process::id();
        assert!(server_cpu(&[me]).is_some_and(|s| s >= 0.0));
        assert_eq!(server_cpu(&[]), Some(0.0));
        assert!(server_cpu(&[u32::MAX]).is_none());
    }
}
