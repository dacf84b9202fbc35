//! The event loop: one thread drives every socket. Each turn receives what has arrived (in
//! batches), runs due timers, starts the flows the pacer says are due, sends everything queued
//! (in batches), then sleeps until the next deadline or an answer. One thread is enough: the
//! per-flow work is a few microseconds, and on a machine shared with the server under test a
//! second busy thread would only take CPU from it.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::RegisterArgs;
use crate::flow::{Config, Generator};
use crate::pacing::Pacer;
use crate::progress::Progress;
use crate::request::Template;
use crate::socket::{self, Receiver, Sender};
use crate::summary::{RunInfo, Summary};
use crate::users;

/// Flows started per turn at most, so a backlog (after a stall) does not starve receiving.
const START_BUDGET: u64 = 512;
/// Longest sleep, so the progress bar keeps moving at low rates.
const MAX_SLEEP_NS: u64 = 100_000_000;

pub fn register(args: &RegisterArgs) -> Result<Summary, String> {
    let text = std::fs::read_to_string(&args.users)
        .map_err(|e| format!("{}: {e}", args.users.display()))?;
    let users = users::parse(&text).map_err(|e| format!("{}: {e}", args.users.display()))?;
    let user_count = users.len();
    let (target, host) = resolve(&args.target)?;
    let sockets = socket::open(target, usize::from(args.sockets))
        .map_err(|e| format!("cannot open UDP sockets towards {target}: {e}"))?;
    let locals = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("local address: {e}"))?;

    let seed = entropy();
    let t1_ns = args.t1_ms * 1_000_000;
    let flow_timeout_ns = match args.timeout {
        Some(s) if s.is_finite() && s > 0.0 => (s * 1e9) as u64,
        Some(s) => {
            return Err(format!(
                "--timeout {s}: expected a positive number of seconds"
            ))
        }
        None => 64 * t1_ns,
    };
    let domain = args.domain.clone().unwrap_or(host);
    let mut run = [0u8; 8];
    for (i, c) in run.iter_mut().enumerate() {
        *c = b"0123456789abcdef"[((seed >> (4 * i)) & 15) as usize];
    }
    let mut gen = Generator::new(
        Config {
            template: Template {
                run,
                request_uri: format!("sip:{domain}"),
                domain,
                expires: if args.unregister { 0 } else { args.expires },
                user_agent: format!("mgw-loadtest/{}", env!("CARGO_PKG_VERSION")),
            },
            locals,
            t1_ns,
            // RFC 3261's T2 is 4 s for T1 = 500 ms; kept in that ratio when tests shorten T1.
            t2_ns: 8 * t1_ns,
            flow_timeout_ns,
            seed,
        },
        users,
    );

    // Ctrl-C or SIGTERM ends the run early, still with its JSON line (flows in flight are
    // reported as such, neither ok nor failed).
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let mut pacer = Pacer::new(args.rate, args.count);
    let mut progress = Progress::new(args.count, args.json_only);
    let mut rx = Receiver::default();
    let mut tx = Sender::new(sockets.len());
    let cpu_before = socket::cpu_seconds();
    let start = Instant::now();
    let clock = || start.elapsed().as_nanos() as u64;
    let mut last_start = 0;
    let tick = args.tick_us * 1000;
    let mut turn_began = 0;
    let end = loop {
        for s in &sockets {
            drain(s, &mut rx, &mut gen, &mut tx, &clock)?;
        }
        let now = clock();
        gen.on_timers(now, &mut tx);
        let due = pacer.take_due(now, START_BUDGET);
        for _ in 0..due {
            gen.start_flow(now, &mut tx);
        }
        if due > 0 {
            last_start = now;
        }
        tx.flush(&sockets);
        progress.tick(now, &gen.stats, gen.active());
        if (pacer.done() && gen.active() == 0) || interrupted.load(Ordering::Relaxed) {
            break now;
        }
        if due == START_BUDGET {
            continue; // behind schedule: no sleeping
        }
        // A plain sleep, never a poll: answers that arrive meanwhile wait in the socket
        // buffers and are read in one batch next turn. Waking per answer costs a context switch
        // each, which on a shared machine is most of a load generator's CPU.
        let tick_end = turn_began + tick;
        let now = clock();
        let wake = if gen.active() > 0 || tx_pending(&tx, sockets.len()) {
            tick_end
        } else {
            // Nothing in flight: only the pacer can have work, and not before its deadline.
            pacer.next_deadline().unwrap_or(now).max(tick_end)
        };
        let wake = wake.min(now + MAX_SLEEP_NS);
        if wake > now {
            std::thread::sleep(Duration::from_nanos(wake - now));
        }
        turn_began = clock();
    };
    progress.finish();
    let cpu_s = socket::cpu_seconds() - cpu_before;
    Ok(Summary::new(
        &gen.stats,
        &RunInfo {
            target: target.to_string(),
            users: user_count,
            rate: args.rate,
            unregister: args.unregister,
            sockets: sockets.len(),
            elapsed_s: end as f64 / 1e9,
            offering_s: last_start as f64 / 1e9,
            cpu_s,
            in_flight: gen.active(),
            interrupted: interrupted.load(Ordering::Relaxed),
        },
    ))
}

fn tx_pending(tx: &Sender, sockets: usize) -> bool {
    (0..sockets).any(|i| tx.pending(i))
}

/// Reads every datagram waiting on `s` and hands each to the flows.
fn drain(
    s: &UdpSocket,
    rx: &mut Receiver,
    gen: &mut Generator,
    tx: &mut Sender,
    clock: &impl Fn() -> u64,
) -> Result<usize, String> {
    let mut total = 0;
    loop {
        match rx.recv(s.as_raw_fd()) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                let now = clock();
                for i in 0..n {
                    gen.on_datagram(rx.datagram(i), now, tx);
                }
                total += n;
                // A short batch emptied the queue: save the call that would say so.
                if n < socket::RECV_BATCH {
                    return Ok(total);
                }
            }
            // An ICMP port unreachable for an earlier request, reported once: the request is
            // lost like any other, and its timers deal with that.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            Err(e) => return Err(format!("recvmmsg: {e}")),
        }
    }
}

/// The target's address and its host part as written (brackets of an IPv6 literal kept, as a
/// SIP URI needs them).
pub(crate) fn resolve(target: &str) -> Result<(SocketAddr, String), String> {
    let bad = || format!("--target {target:?}: expected HOST:PORT");
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("--target {target:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {target:?}: no address"))?;
    Ok((addr, host.to_string()))
}

/// Seed for the run id and the cnonces: different per run and per process.
pub(crate) fn entropy() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    // splitmix64 finaliser: spreads the few changing bits over the whole word.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let (a, h) = resolve("127.0.0.1:5070").expect("v4");
        assert_eq!((a.port(), h.as_str()), (5070, "127.0.0.1"));
        let (a, h) = resolve("[::1]:5060").expect("v6");
        assert_eq!((a.is_ipv6(), h.as_str()), (true, "[::1]"));
        assert!(resolve("127.0.0.1").is_err());
        assert!(resolve(":5060").is_err());
        assert!(resolve("127.0.0.1:x").is_err());
    }
}
