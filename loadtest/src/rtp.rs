//! `mgw-loadtest rtp`: media load through an ng-controlled relay (mgw or rtpengine). For each
//! stream it opens two UDP sockets (a caller and a callee), sets the call up with ng `offer` and
//! `answer`, and both ends send 20 ms G.711 packets (172 bytes) at `--pps` to the ports the
//! rewritten SDPs name. Each packet carries its send time, so one-way latency through the relay
//! is measured on this host's clock (it includes up to 0.5 ms of this generator's own polling
//! interval, the same for every relay measured); loss is packets sent minus packets received.
//! Ends with ng `delete` for every stream and one JSON line.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mgw_media::ng::bencode::Value;
use mgw_media::rtp::header::write_header;
use mgw_media::sdp::SessionDescription;
use serde::Serialize;

use crate::cli::RtpArgs;

#[derive(Debug, Serialize)]
pub struct RtpSummary {
    pub streams: usize,
    pub pps_per_direction: u32,
    pub duration_s: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_max: u64,
    pub setup_failed: usize,
}

struct Stream {
    call_id: String,
    /// [caller, callee] sockets and where each sends (the relay's port for it).
    socks: [UdpSocket; 2],
    dest: [SocketAddr; 2],
    seq: [u16; 2],
}

/// One ng request and its reply.
fn ng(sock: &UdpSocket, target: SocketAddr, cookie: &str, cmd: &Value) -> io::Result<Value> {
    let mut d = format!("{cookie} ").into_bytes();
    cmd.encode(&mut d);
    let mut buf = vec![0u8; 65536];
    for _ in 0..3 {
        sock.send_to(&d, target)?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                let reply = &buf[..n];
                let Some(body) = reply.strip_prefix(format!("{cookie} ").as_bytes()) else {
                    continue;
                };
                return Value::parse(body)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no ng reply after 3 tries",
    ))
}

fn sdp_for(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

fn media_target(reply: &Value) -> io::Result<SocketAddr> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    if reply.str("result") != Some("ok") {
        return Err(bad(format!(
            "ng error: {}",
            reply.str("error-reason").unwrap_or("no reason")
        )));
    }
    let sdp = reply
        .str("sdp")
        .ok_or_else(|| bad("reply without sdp".into()))?;
    let s = SessionDescription::parse(sdp.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let ip = s
        .media_address(0)
        .ok_or_else(|| bad("no media address".into()))?;
    let port = s.media.first().map(|m| m.port).unwrap_or(0);
    Ok(SocketAddr::new(ip, port))
}

fn setup(ctl: &UdpSocket, target: SocketAddr, i: usize, bind: &str) -> io::Result<Stream> {
    let caller = UdpSocket::bind(format!("{bind}:0"))?;
    let callee = UdpSocket::bind(format!("{bind}:0"))?;
    let call_id = format!("lt-{}-{i}", std::process::id());
    let text = |s: &str| Value::text(s);
    let offer = ng(
        ctl,
        target,
        &format!("o{i}"),
        &Value::dict([
            ("command", text("offer")),
            ("call-id", text(&call_id)),
            ("from-tag", text("caller")),
            ("sdp", text(&sdp_for(caller.local_addr()?))),
            ("flags", Value::List(vec![text("trust-address")])),
        ]),
    )?;
    let to_callee_side = media_target(&offer)?;
    let answer = ng(
        ctl,
        target,
        &format!("a{i}"),
        &Value::dict([
            ("command", text("answer")),
            ("call-id", text(&call_id)),
            ("from-tag", text("caller")),
            ("to-tag", text("callee")),
            ("sdp", text(&sdp_for(callee.local_addr()?))),
            ("flags", Value::List(vec![text("trust-address")])),
        ]),
    )?;
    let to_caller_side = media_target(&answer)?;
    for s in [&caller, &callee] {
        s.set_nonblocking(true)?;
    }
    Ok(Stream {
        call_id,
        socks: [caller, callee],
        // The caller sends to the port in the answer, the callee to the one in the offer.
        dest: [to_caller_side, to_callee_side],
        seq: [0, 0],
    })
}

pub fn run(args: &RtpArgs) -> Result<RtpSummary, String> {
    let target: SocketAddr = args
        .ng
        .parse()
        .map_err(|_| format!("--ng {:?} is not IP:PORT", args.ng))?;
    let ctl = UdpSocket::bind(format!("{}:0", args.bind)).map_err(|e| format!("bind: {e}"))?;
    ctl.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut streams = Vec::with_capacity(args.streams);
    let mut setup_failed = 0;
    let mut first_error = None;
    for i in 0..args.streams {
        match setup(&ctl, target, i, &args.bind) {
            Ok(s) => streams.push(s),
            Err(e) => {
                setup_failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if streams.is_empty() {
        return Err(format!(
            "no stream could be set up: {}",
            first_error.unwrap_or_default()
        ));
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.pps.max(1)));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(args.duration);
    let mut packet = [0u8; 172];
    let mut buf = [0u8; 2048];
    let (mut sent, mut received) = (0u64, 0u64);
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let n = streams.len();
    let mut next = t0;
    let mut tick = 0u64;
    while Instant::now() < end {
        // Each tick sends one packet per direction of every stream, spread over the interval.
        let now = Instant::now();
        if now >= next {
            for s in streams.iter_mut() {
                for side in 0..2 {
                    let stamp = t0.elapsed().as_nanos() as u64;
                    write_header(
                        &mut packet,
                        false,
                        0,
                        s.seq[side],
                        (tick * 160) as u32,
                        0x1000 + side as u32,
                    );
                    packet[12..20].copy_from_slice(&stamp.to_be_bytes());
                    if s.socks[side].send_to(&packet, s.dest[side]).is_ok() {
                        sent += 1;
                    }
                    s.seq[side] = s.seq[side].wrapping_add(1);
                }
            }
            tick += 1;
            next += interval;
        }
        for s in &streams {
            for sock in &s.socks {
                while let Ok(len) = sock.recv(&mut buf) {
                    if len >= 20 {
                        received += 1;
                        let mut stamp = [0u8; 8];
                        stamp.copy_from_slice(&buf[12..20]);
                        let sent_ns = u64::from_be_bytes(stamp);
                        let lat = (t0.elapsed().as_nanos() as u64).saturating_sub(sent_ns) / 1000;
                        latencies.push(lat.min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_micros(500));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
    // Late packets still in flight.
    let drain_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_until {
        for s in &streams {
            for sock in &s.socks {
                while let Ok(len) = sock.recv(&mut buf) {
                    if len >= 20 {
                        received += 1;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    for (i, s) in streams.iter().enumerate() {
        let _ = ng(
            &ctl,
            target,
            &format!("d{i}"),
            &Value::dict([
                ("command", Value::text("delete")),
                ("call-id", Value::text(&s.call_id)),
                ("from-tag", Value::text("caller")),
            ]),
        );
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        u64::from(latencies[i])
    };
    let lost = sent.saturating_sub(received);
    Ok(RtpSummary {
        streams: n,
        pps_per_direction: args.pps,
        duration_s: (elapsed * 1000.0).round() / 1000.0,
        sent,
        received,
        lost,
        loss_pct: if sent == 0 {
            0.0
        } else {
            (lost as f64 * 10_000.0 / sent as f64).round() / 100.0
        },
        latency_us_p50: pct(0.5),
        latency_us_p99: pct(0.99),
        latency_us_max: latencies.last().map_or(0, |&l| u64::from(l)),
        setup_failed,
    })
}
