//! UDP request/response echo on loopback: this engine's io_uring and epoll backends against a
//! tokio-uring `UdpSocket` loop, under the same load generator (docs/decisions-engine.md).
//!
//! ```text
//! cargo run --release -p mgw-engine --example udp_echo_compare -- [requests] [window] [size] [rounds]
//! ```
//!
//! Each server runs on one thread pinned to CPU 0 of this process; the load generator is a
//! child process pinned to the last CPU, keeping `window` requests outstanding with
//! sendmmsg/recvmmsg until `requests` answers came back. Reported per server: answers per
//! second (wall clock) and the server process's CPU time (utime + stime from getrusage) per
//! answer. The median of `rounds` runs is printed.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mgw_core::sip::framing::FrameError;
use mgw_engine::{Backend, Engine, EngineConfig, Handler, ListenAddr, Outbox, Peer};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, msg: &[u8], peer: Peer, _: Instant, out: &mut Outbox) {
        out.send(peer, msg);
    }
    fn on_stream_error(&mut self, _: &[u8], _: FrameError, _: Peer, _: Instant, _: &mut Outbox) {}
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn on_timer(&mut self, _: Instant, _: &mut Outbox) {}
}

/// (user, system) CPU time of this process or of its waited-for children.
fn cpu_time(who: i32) -> (Duration, Duration) {
    // SAFETY: getrusage fills the live struct passed to it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

fn ncpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET with an index below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

struct Load {
    requests: u64,
    window: usize,
    size: usize,
}

struct Outcome {
    answers: u64,
    wall: Duration,
    server_user: Duration,
    server_sys: Duration,
    client_cpu: Duration,
    /// Engine only: datagrams handled per loop turn (how much batching the load allowed).
    per_turn: Option<f64>,
}

/// Runs the load generator child against `server` and measures this process meanwhile.
fn measure(server: SocketAddr, load: &Load) -> Outcome {
    let (u0, s0) = cpu_time(libc::RUSAGE_SELF);
    let (cu0, cs0) = cpu_time(libc::RUSAGE_CHILDREN);
    let t0 = Instant::now();
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--client",
            &server.to_string(),
            &load.requests.to_string(),
            &load.window.to_string(),
            &load.size.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("load generator");
    let wall = t0.elapsed();
    let (u1, s1) = cpu_time(libc::RUSAGE_SELF);
    let (cu1, cs1) = cpu_time(libc::RUSAGE_CHILDREN);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let answers: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let busy_ns: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Outcome {
        answers,
        // The child's own measured busy time excludes process start-up.
        wall: if busy_ns > 0 {
            Duration::from_nanos(busy_ns)
        } else {
            wall
        },
        server_user: u1.saturating_sub(u0),
        server_sys: s1.saturating_sub(s0),
        client_cpu: (cu1 + cs1).saturating_sub(cu0 + cs0),
        per_turn: None,
    }
}

fn run_engine(backend: Backend, load: &Load) -> Outcome {
    let cfg = EngineConfig {
        workers: 1,
        backend,
        listen: vec![ListenAddr::udp(SocketAddr::from(([127, 0, 0, 1], 0)))],
        pin_workers: true,
        ..EngineConfig::default()
    };
    let engine = Engine::start(cfg, |_| Echo).expect("engine");
    let addr = engine.local_addrs()[0].addr;
    let before = engine.stats()[0].clone();
    let mut o = measure(addr, load);
    let after = engine.stats()[0].clone();
    let turns = after.loop_turns.saturating_sub(before.loop_turns).max(1);
    o.per_turn = Some(
        after
            .udp_rx_datagrams
            .saturating_sub(before.udp_rx_datagrams) as f64
            / turns as f64,
    );
    engine.shutdown();
    o
}

/// tokio-uring's documented style: `tasks` loops of recv_from then send_to on one socket.
fn run_tokio_uring(tasks: usize, load: &Load) -> Outcome {
    let std_sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    let addr = std_sock.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        pin(0);
        tokio_uring::start(async move {
            let sock = Rc::new(tokio_uring::net::UdpSocket::from_std(std_sock));
            let mut loops = Vec::new();
            for _ in 0..tasks {
                let sock = sock.clone();
                loops.push(tokio_uring::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    loop {
                        let (res, b) = sock.recv_from(buf).await;
                        let Ok((n, peer)) = res else { return };
                        if &b[..n] == b"STOP" {
                            return;
                        }
                        let (res, slice) = sock
                            .send_to(tokio_uring::buf::BoundedBuf::slice(b, ..n), peer)
                            .await;
                        buf = slice.into_inner();
                        if res.is_err() {
                            return;
                        }
                    }
                }));
            }
            for l in loops {
                let _ = l.await;
            }
        });
    });
    std::thread::sleep(Duration::from_millis(50));
    let o = measure(addr, load);
    let stopper = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    for _ in 0..tasks {
        let _ = stopper.send_to(b"STOP", addr);
    }
    let _ = server.join();
    o
}

/// The load generator: keeps `window` requests in flight on a connected socket.
fn client(server: SocketAddr, requests: u64, window: usize, size: usize) {
    pin(ncpu() - 1);
    let s = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    s.connect(server).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    // Room for a large window of answers (the kernel clamps it to net.core.rmem_max).
    let rcvbuf: libc::c_int = 4 << 20;
    // SAFETY: passes a live c_int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    let payload = vec![b'x'; size];
    const BATCH: usize = 64;
    let mut rx = vec![vec![0u8; 2048]; BATCH];
    let send = |n: usize| {
        // SAFETY: plain C structs, zero is valid; the iovecs point at `payload`, alive and
        // unmoved during the synchronous call.
        unsafe {
            let mut iov: [libc::iovec; BATCH] = std::mem::zeroed();
            let mut hdr: [libc::mmsghdr; BATCH] = std::mem::zeroed();
            for i in 0..n {
                iov[i].iov_base = payload.as_ptr().cast_mut().cast();
                iov[i].iov_len = payload.len();
                hdr[i].msg_hdr.msg_iov = &mut iov[i];
                hdr[i].msg_hdr.msg_iovlen = 1;
            }
            let mut done = 0;
            while done < n {
                let r = libc::sendmmsg(fd, hdr.as_mut_ptr().add(done), (n - done) as u32, 0);
                if r <= 0 {
                    break;
                }
                done += r as usize;
            }
        }
    };
    let t0 = Instant::now();
    let (mut sent, mut answered) = (0u64, 0u64);
    let first = (window as u64).min(requests) as usize;
    let mut left = first;
    while left > 0 {
        let n = left.min(BATCH);
        send(n);
        left -= n;
    }
    sent += first as u64;
    while answered < requests {
        // SAFETY: as in `send`, for receive buffers owned by `rx`.
        let got = unsafe {
            let mut iov: [libc::iovec; BATCH] = std::mem::zeroed();
            let mut hdr: [libc::mmsghdr; BATCH] = std::mem::zeroed();
            for i in 0..BATCH {
                iov[i].iov_base = rx[i].as_mut_ptr().cast();
                iov[i].iov_len = rx[i].len();
                hdr[i].msg_hdr.msg_iov = &mut iov[i];
                hdr[i].msg_hdr.msg_iovlen = 1;
            }
            // Blocks for the first datagram (SO_RCVTIMEO), then takes what is queued.
            libc::recvmmsg(
                fd,
                hdr.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            // Lost datagrams (drops under load): refill the window so the run finishes.
            let refill = (window as u64).min(requests - answered) as usize;
            send(refill.min(BATCH));
            sent += refill.min(BATCH) as u64;
            continue;
        }
        answered += got as u64;
        let more = (requests.saturating_sub(sent)).min(got as u64) as usize;
        if more > 0 {
            send(more);
            sent += more as u64;
        }
    }
    println!("{answered} {}", t0.elapsed().as_nanos());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--client") {
        let server = args[2].parse().expect("server address");
        client(
            server,
            args[3].parse().expect("requests"),
            args[4].parse().expect("window"),
            args[5].parse().expect("size"),
        );
        return;
    }
    let num = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let load = Load {
        requests: num(1, 200_000),
        window: num(2, 64) as usize,
        size: num(3, 512) as usize,
    };
    let rounds = num(4, 3) as usize;
    if ncpu() < 2 {
        eprintln!("note: one CPU only; server and load generator share it");
    }
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "UDP echo, loopback, {} requests of {} bytes, window {}, median of {rounds} runs; {} CPUs, load average before: {}",
        load.requests,
        load.size,
        load.window,
        ncpu(),
        loadavg().trim()
    );
    println!("| server | answers/s | server CPU per answer (user + sys) | server CPU busy | load generator CPU busy | datagrams per loop turn |");
    println!("|---|---:|---:|---:|---:|---:|");
    type Runner = Box<dyn Fn(&Load) -> Outcome>;
    let servers: Vec<(&str, Runner)> = vec![
        (
            "mgw-engine io_uring",
            Box::new(|l| run_engine(Backend::IoUring, l)),
        ),
        (
            "mgw-engine epoll",
            Box::new(|l| run_engine(Backend::Epoll, l)),
        ),
        (
            "tokio-uring, 1 recv/send loop",
            Box::new(|l| run_tokio_uring(1, l)),
        ),
        (
            "tokio-uring, 8 recv/send loops",
            Box::new(|l| run_tokio_uring(8, l)),
        ),
    ];
    for (name, run) in servers {
        let mut outs: Vec<Outcome> = (0..rounds).map(|_| run(&load)).collect();
        outs.sort_by(|a, b| {
            let rate = |o: &Outcome| o.answers as f64 / o.wall.as_secs_f64();
            rate(a).total_cmp(&rate(b))
        });
        let o = &outs[outs.len() / 2];
        let pps = o.answers as f64 / o.wall.as_secs_f64();
        let per = |d: Duration| d.as_nanos() as f64 / o.answers.max(1) as f64 / 1000.0;
        let cpu = o.server_user + o.server_sys;
        let busy = |d: Duration| d.as_secs_f64() / o.wall.as_secs_f64() * 100.0;
        println!(
            "| {name} | {pps:.0} | {:.2} µs ({:.2} + {:.2}) | {:.0} % | {:.0} % | {} |",
            per(cpu),
            per(o.server_user),
            per(o.server_sys),
            busy(cpu),
            busy(o.client_cpu),
            o.per_turn.map_or("n/a".to_string(), |t| format!("{t:.1}"))
        );
    }
    println!("load average after: {}", loadavg().trim());
}
