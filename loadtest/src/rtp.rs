//! `mgw-loadtest rtp`: media load through an ng-controlled relay (mgw, rtpengine or the floor
//! relay). Every stream is a call set up with ng `offer` and `answer` between two endpoints of
//! this process, after which both send 20 ms packets at `--pps` to the ports the relay wrote
//! into the SDPs. The run ends with ng `delete` for every stream and one JSON line.
//!
//! How it keeps its own cost and noise out of the figures:
//!
//! - Endpoints share a few sockets per thread (`--sockets`), so a turn of the loop moves many
//!   packets per `sendmmsg`/`recvmmsg`. Relays demultiplex by their own port, so this changes
//!   nothing for them; `--sockets 0` gives every endpoint its own port instead, as real phones
//!   have, at a system call or two per packet.
//! - Latency is taken from the kernel's arrival timestamp (SO_TIMESTAMPNS), not from when the
//!   loop got round to reading, so batching reads every `--tick-us` adds nothing to it. That
//!   timestamp is CLOCK_REALTIME, so the send time in the packet is too; an NTP step during a
//!   run would show as an outlier, slewing is far below a microsecond per millisecond.
//! - Packets are stamped in groups of [`SEND_GROUP`] just before the `sendmmsg` that carries
//!   them: on loopback each send also runs the relay socket's receive path, about 1-2 us, so
//!   the last packet of a group waits that much per packet before it, and no more.
//! - Stream phases are spread evenly over the period, so the relay sees a steady rate rather
//!   than bursts of every stream at once.
//!
//! Transcoded streams (`--codec-a` differs from `--codec-b`) carry real encoded audio; the relay
//! decodes and re-encodes it, and rewrites SSRC, sequence numbers and timestamps, so nothing in
//! a received packet identifies when it was sent. For them loss is counted (same ptime both
//! ways, so one packet out for each packet in) and latency is reported as null.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mgw_media::ng::bencode::Value;
use mgw_media::rtp::header::write_header;
use mgw_media::sdp::SessionDescription;
use serde::Serialize;

use crate::cli::RtpArgs;
use crate::codecs::Codec;
use crate::mmsg::{self, Epoll, RawAddr, RecvBatch, SendBatch};
use crate::procstat;
use crate::socket::cpu_seconds;

/// Packets stamped and sent together (see the module comment).
const SEND_GROUP: usize = 8;
const RECV_BATCH: usize = 64;
/// Larger than any packet a relay sends back for 20 ms of G.711 or Opus.
const RECV_SLOT: usize = 2048;
/// Marks a payload carrying the generator's stamp: `MAGIC`, stream index (u32), send time
/// (CLOCK_REALTIME ns, u64), all big-endian.
const MAGIC: &[u8; 4] = b"MGWL";
const STAMP_LEN: usize = 16;
/// Shared sockets carry hundreds of streams: their queues must absorb a turn's worth and more.
const SHARED_SOCKET_BUFFER: libc::c_int = 16 << 20;
/// Latency and lag histograms: 1 us buckets up to here, then 1 ms buckets for as many more.
const FINE_US: usize = 100_000;
const COARSE_MS: usize = 10_000;
/// ng requests in a row without any reply after which the relay is taken for gone.
const GIVE_UP_AFTER: usize = 5;
/// After the last send, how long late packets are still counted.
const DRAIN: Duration = Duration::from_millis(300);
/// A thread busy (sending and reading) for more than this share of the run cannot be trusted
/// to keep its schedule: the figures would describe the generator rather than the relay.
const SATURATED_BUSY: f64 = 0.9;
/// Nor can one that sent less than this share of the packets due in the run.
const SATURATED_SENT: f64 = 0.995;

#[derive(Debug, Serialize)]
pub struct RtpSummary {
    pub streams: usize,
    pub pps_per_direction: u32,
    pub duration_s: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    /// Kernel arrival time minus the send stamp; null when no packet carried a stamp
    /// (transcoded streams).
    pub latency_us_p50: Option<u64>,
    pub latency_us_p99: Option<u64>,
    pub latency_us_p999: Option<u64>,
    pub latency_us_max: Option<u64>,
    pub latency_samples: u64,
    /// Mean latency of the packets sent in each second of the run: whether a relay's queue
    /// grows (it will lose packets once its sockets' buffers are full) or stands.
    /// A second from which no stamped packet arrived is null.
    pub latency_us_mean_by_s: Option<Vec<Option<u64>>>,
    pub sent_a_to_b: u64,
    pub received_a_to_b: u64,
    pub sent_b_to_a: u64,
    pub received_b_to_a: u64,
    pub codec_a: &'static str,
    pub codec_b: &'static str,
    pub transcoding: bool,
    /// The payload type B sends, as the relay's offer to B named the codec.
    pub payload_type_b: Option<u8>,
    pub setup_failed: usize,
    pub setup_error: Option<String>,
    pub setup_s: f64,
    pub threads: usize,
    pub sockets_per_side: usize,
    /// Datagrams the kernel refused to send, and receive errors (ICMP from a closed port).
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Datagrams dropped by the generator's own sockets (receive buffer full): loss that is
    /// the generator's, not the relay's.
    pub generator_drops: u64,
    /// How late packets left against their schedule.
    pub send_lag_us_p99: u64,
    pub send_lag_us_max: u64,
    pub generator_cpu_s: f64,
    /// CPU over the media phase, in % of one core (spinning included).
    pub generator_cpu_pct: f64,
    /// Time the threads spent sending and reading, in % of one core: what is left when the
    /// spinning of `--spin-us` is taken out.
    pub generator_busy_pct: f64,
    /// The generator was the bottleneck: a thread busy over 90 % of the run, fewer than
    /// 99.5 % of the `scheduled` packets sent, or packets dropped by its own sockets. The
    /// figures then describe the generator rather than the relay. Send lag alone does not
    /// count: on a VM a sleeping thread can wake milliseconds late while far from busy.
    pub generator_saturated: bool,
    /// Packets due in the run: about streams x 2 x pps x duration.
    pub scheduled: u64,
    /// With `--relay-pid`: the relay's CPU (all its threads) over the media phase only, per
    /// packet received here (each one the relay received and sent), and in % of one core.
    pub relay_pid: Option<u32>,
    pub relay_cpu_s: Option<f64>,
    pub relay_cpu_us_per_packet: Option<f64>,
    pub relay_cpu_pct: Option<f64>,
    /// When the relay is pinned to one CPU: that CPU's interrupt and softirq time over the
    /// media phase. The kernel charges it to no process; on loopback it is mostly the relay's
    /// sends being delivered into the generator's sockets, which a NIC would take off the CPU.
    pub relay_cpu_softirq_s: Option<f64>,
    /// The media phase: first send to the end of the drain after the last.
    pub media_s: f64,
    /// CPU the whole machine spent in processes other than the generator and the relay over
    /// the media phase: anything well above zero means other work competed with the
    /// measurement.
    pub other_cpu_s: Option<f64>,
    /// Time the hypervisor ran something else instead of this machine's processors, summed
    /// over them, over the media phase: stalls that no process here caused.
    pub machine_steal_s: Option<f64>,
}

/// Counts per microsecond up to [`FINE_US`], per millisecond beyond, up to [`COARSE_MS`]: an
/// overloaded relay queues for seconds, and its percentiles must still mean something.
struct Hist {
    counts: Vec<u32>,
    n: u64,
    max: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; FINE_US + COARSE_MS],
            n: 0,
            max: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        let us = us as usize;
        if us < FINE_US {
            us
        } else {
            FINE_US + ((us - FINE_US) / 1000).min(COARSE_MS - 1)
        }
    }

    /// The smallest value of bucket `i`.
    fn floor(i: usize) -> u64 {
        if i < FINE_US {
            i as u64
        } else {
            (FINE_US + (i - FINE_US) * 1000) as u64
        }
    }

    fn add(&mut self, us: u64) {
        let i = Hist::bucket(us);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.n += 1;
        self.max = self.max.max(us);
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a = a.saturating_add(*b);
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
    }

    fn pct(&self, p: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let want = ((self.n as f64 * p).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= want {
                // The last bucket holds everything beyond: the max is the honest answer there.
                return Some(if i == self.counts.len() - 1 {
                    self.max
                } else {
                    Hist::floor(i).min(self.max)
                });
            }
        }
        Some(self.max)
    }
}

/// One sending direction of a stream.
struct Leg {
    sock: usize,
    dest: RawAddr,
    pt: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    ts_step: u32,
    /// 0: frames of codec A (the offerer sends), 1: of codec B.
    frames: usize,
    frame: usize,
    stamped: bool,
    stream: u32,
    phase_ns: u64,
    /// 0 when A sends (towards B), 1 when B sends.
    dir: usize,
}

/// One thread's endpoints and the legs they send.
struct Worker {
    socks: Vec<UdpSocket>,
    /// Per socket: 0 if an A endpoint receives on it (B-to-A traffic), 1 for B.
    recv_dir: Vec<usize>,
    legs: Vec<Leg>,
}

#[derive(Default)]
struct Counts {
    sent: [u64; 2],
    received: [u64; 2],
    send_errors: u64,
    recv_errors: u64,
}

struct WorkerResult {
    counts: Counts,
    /// Time spent sending and reading, as opposed to sleeping or spinning.
    busy_ns: u64,
    latency: Hist,
    lag: Hist,
    drops: u64,
    /// Per second of the run (by send time): sum of latencies in us, and how many.
    by_second: Vec<(u64, u64)>,
}

struct Schedule {
    t0: u64,
    /// `t0` on CLOCK_REALTIME, the clock of the stamps in the packets.
    t0_real: u64,
    end: u64,
    period: u64,
    tick: u64,
    spin: u64,
}

/// Sleeps until `spin` ns before `target`, then spins: a sleeping thread on a VM can wake a
/// millisecond or more late, and every late wake-up sends a burst the relay must queue.
fn wait_until(target: u64, spin: u64) {
    if target > mmsg::mono_ns() + spin {
        mmsg::sleep_until(target - spin);
    }
    while mmsg::mono_ns() < target {
        std::hint::spin_loop();
    }
}

impl Worker {
    fn endpoint_pair(&mut self, local: usize, shared: usize, bind: &str) -> io::Result<[usize; 2]> {
        if shared > 0 {
            return Ok([local % shared, shared + local % shared]);
        }
        let mut pair = [0; 2];
        for (dir, slot) in pair.iter_mut().enumerate() {
            let s = UdpSocket::bind(format!("{bind}:0"))?;
            s.set_nonblocking(true)?;
            mmsg::enable_rx_timestamps(&s)?;
            *slot = self.socks.len();
            self.socks.push(s);
            self.recv_dir.push(dir);
        }
        Ok(pair)
    }

    fn run(mut self, sched: &Schedule, frames: &[Vec<Vec<u8>>; 2]) -> io::Result<WorkerResult> {
        mmsg::precise_timers();
        self.legs.sort_by_key(|l| l.phase_ns);
        let mut ep = Epoll::new(1024)?;
        for (k, s) in self.socks.iter().enumerate() {
            ep.add(s.as_raw_fd(), k as u64)?;
        }
        let mut rx = RecvBatch::new(RECV_BATCH, RECV_SLOT, true);
        let mut tx = SendBatch::new(SEND_GROUP);
        let mut scratch = vec![0u8; SEND_GROUP * RECV_SLOT];
        let mut out = WorkerResult {
            counts: Counts::default(),
            busy_ns: 0,
            latency: Hist::new(),
            lag: Hist::new(),
            drops: 0,
            by_second: vec![(0, 0); (sched.end - sched.t0).div_ceil(1_000_000_000) as usize],
        };
        let (mut cycle, mut cursor) = (0u64, 0usize);
        let due_at = |legs: &[Leg], cycle: u64, cursor: usize| {
            sched.t0 + cycle * sched.period + legs[cursor].phase_ns
        };
        let mut due: Vec<(usize, u64)> = Vec::with_capacity(self.legs.len());
        wait_until(sched.t0, sched.spin);
        loop {
            let now = mmsg::mono_ns();
            due.clear();
            while !self.legs.is_empty() {
                let at = due_at(&self.legs, cycle, cursor);
                if at > now || at >= sched.end {
                    break;
                }
                due.push((cursor, at));
                cursor += 1;
                if cursor == self.legs.len() {
                    cursor = 0;
                    cycle += 1;
                }
            }
            self.send(&due, &mut tx, &mut scratch, frames, &mut out);
            self.receive(&mut ep, &mut rx, sched, &mut out)?;
            let next = if self.legs.is_empty() {
                sched.end
            } else {
                due_at(&self.legs, cycle, cursor)
            };
            let done = mmsg::mono_ns();
            out.busy_ns += done - now;
            // Only when nothing due before the end is left: a late turn (a VM stall near the
            // end) still sends what fell due, so every run sends its full schedule.
            if next >= sched.end {
                break;
            }
            wait_until(next.max(done + sched.tick), sched.spin);
        }
        let drain_end = Instant::now() + DRAIN;
        while Instant::now() < drain_end {
            self.receive(&mut ep, &mut rx, sched, &mut out)?;
            let c = &out.counts;
            if c.received[0] + c.received[1] >= c.sent[0] + c.sent[1] {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out.drops = self.socks.iter().map(mmsg::socket_drops).sum();
        Ok(out)
    }

    /// Sends the due legs, grouped by socket, stamping each group just before it goes.
    fn send(
        &mut self,
        due: &[(usize, u64)],
        tx: &mut SendBatch,
        scratch: &mut [u8],
        frames: &[Vec<Vec<u8>>; 2],
        out: &mut WorkerResult,
    ) {
        let mut order: Vec<(usize, u64)> = due.to_vec();
        order.sort_by_key(|&(l, _)| self.legs[l].sock);
        let mut start = 0;
        while start < order.len() {
            let sock = self.legs[order[start].0].sock;
            let mut end = start + 1;
            while end < order.len()
                && end - start < SEND_GROUP
                && self.legs[order[end].0].sock == sock
            {
                end += 1;
            }
            let stamp = mmsg::real_ns();
            let now = mmsg::mono_ns();
            let mut lens = [0usize; SEND_GROUP];
            for (k, &(l, at)) in order[start..end].iter().enumerate() {
                out.lag.add(now.saturating_sub(at) / 1000);
                let buf = &mut scratch[k * RECV_SLOT..(k + 1) * RECV_SLOT];
                lens[k] = build(&mut self.legs[l], buf, frames, stamp);
            }
            let items: Vec<(&RawAddr, &[u8])> = order[start..end]
                .iter()
                .enumerate()
                .map(|(k, &(l, _))| {
                    (
                        &self.legs[l].dest,
                        &scratch[k * RECV_SLOT..k * RECV_SLOT + lens[k]],
                    )
                })
                .collect();
            let r = tx.send(self.socks[sock].as_raw_fd(), &items);
            // All legs of one socket send in one direction.
            let dir = self.legs[order[start].0].dir;
            out.counts.sent[dir] += r.sent as u64;
            out.counts.send_errors += r.failed as u64;
            start = end;
        }
    }

    /// Reads everything waiting on the ready sockets.
    fn receive(
        &mut self,
        ep: &mut Epoll,
        rx: &mut RecvBatch,
        sched: &Schedule,
        out: &mut WorkerResult,
    ) -> io::Result<()> {
        for token in ep.wait(Some(Duration::ZERO))? {
            let k = token as usize;
            let Some(sock) = self.socks.get(k) else {
                continue;
            };
            let dir = self.recv_dir[k];
            // Bounded: a socket fed faster than it is read must not starve the sends.
            for _ in 0..64 {
                let n = match rx.recv(sock.as_raw_fd()) {
                    Ok(n) => n,
                    Err(_) => {
                        out.counts.recv_errors += 1;
                        continue;
                    }
                };
                out.counts.received[dir] += n as u64;
                for i in 0..n {
                    if let Some(sent) = stamp_of(rx.datagram(i)) {
                        let at = rx.stamp(i).unwrap_or_else(mmsg::real_ns);
                        let us = at.saturating_sub(sent) / 1000;
                        out.latency.add(us);
                        let second = (sent.saturating_sub(sched.t0_real) / 1_000_000_000) as usize;
                        if let Some(b) = out.by_second.get_mut(second) {
                            b.0 += us;
                            b.1 += 1;
                        }
                    }
                }
                if n < rx.capacity() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Writes the leg's next packet into `buf` and returns its length.
fn build(leg: &mut Leg, buf: &mut [u8], frames: &[Vec<Vec<u8>>; 2], stamp: u64) -> usize {
    let set = &frames[leg.frames];
    let frame = &set[leg.frame % set.len()];
    leg.frame = (leg.frame + 1) % set.len();
    write_header(buf, false, leg.pt, leg.seq, leg.ts, leg.ssrc);
    leg.seq = leg.seq.wrapping_add(1);
    leg.ts = leg.ts.wrapping_add(leg.ts_step);
    let len = frame.len().min(buf.len() - 12);
    buf[12..12 + len].copy_from_slice(&frame[..len]);
    if !leg.stamped {
        return 12 + len;
    }
    buf[12..16].copy_from_slice(MAGIC);
    buf[16..20].copy_from_slice(&leg.stream.to_be_bytes());
    buf[20..28].copy_from_slice(&stamp.to_be_bytes());
    12 + len.max(STAMP_LEN)
}

/// Where the RTP payload starts: after CSRCs and a header extension (RFC 3550 5.1, 5.3.1).
fn payload_offset(d: &[u8]) -> Option<usize> {
    if d.len() < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let mut at = 12 + 4 * usize::from(d[0] & 0x0F);
    if d[0] & 0x10 != 0 {
        let words = d.get(at + 2..at + 4)?;
        at += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (at <= d.len()).then_some(at)
}

/// The send time in a stamped packet.
fn stamp_of(d: &[u8]) -> Option<u64> {
    let p = &d[payload_offset(d)?..];
    if p.len() < STAMP_LEN || &p[..4] != MAGIC {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&p[8..16]);
    Some(u64::from_be_bytes(t))
}

/// One ng request and its reply: up to 3 sends, 500 ms apart; replies to other cookies (late
/// answers to an earlier try) are skipped.
fn ng(sock: &UdpSocket, target: SocketAddr, cookie: &str, cmd: &Value) -> io::Result<Value> {
    let mut d = format!("{cookie} ").into_bytes();
    cmd.encode(&mut d);
    let mut buf = vec![0u8; 65536];
    let prefix = format!("{cookie} ");
    for _ in 0..3 {
        sock.send_to(&d, target)?;
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let Some(body) = buf[..n].strip_prefix(prefix.as_bytes()) else {
                        continue;
                    };
                    return Value::parse(body)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no ng reply after 3 tries",
    ))
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// The SDP of an ng reply, and where it says to send media.
fn reply_sdp(reply: &Value, what: &str) -> io::Result<(SocketAddr, SessionDescription)> {
    if reply.str("result") != Some("ok") {
        return Err(bad(format!(
            "{what}: ng error: {}",
            reply.str("error-reason").unwrap_or("no reason")
        )));
    }
    let sdp = reply
        .str("sdp")
        .ok_or_else(|| bad(format!("{what}: reply without sdp")))?;
    let s = SessionDescription::parse(sdp.as_bytes())
        .map_err(|e| bad(format!("{what}: relay's SDP: {e}")))?;
    let i = s
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)
        .ok_or_else(|| bad(format!("{what}: relay's SDP has no audio")))?;
    let ip = s
        .media_address(i)
        .ok_or_else(|| bad(format!("{what}: relay's SDP has no address")))?;
    Ok((SocketAddr::new(ip, s.media[i].port), s))
}

/// The payload type `sdp` gives `codec` in its first audio stream.
fn payload_type_for(sdp: &SessionDescription, codec: Codec) -> Option<u8> {
    let m = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)?;
    m.formats.iter().copied().find(|&pt| match m.rtpmap(pt) {
        Some(map) => map.encoding.eq_ignore_ascii_case(codec.encoding()),
        None => codec.static_pt() == Some(pt),
    })
}

fn sdp_for(addr: SocketAddr, codec: Codec, pt: u8, ptime_ms: u32) -> String {
    let ip = addr.ip();
    let v = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- 1 1 IN {v} {ip}\r\ns=-\r\nc=IN {v} {ip}\r\nt=0 0\r\n{}",
        codec.sdp_media(addr.port(), pt, ptime_ms)
    )
}

struct Call {
    call_id: String,
    /// Relay ports: where A sends, where B sends.
    dest: [SocketAddr; 2],
    pt_b: u8,
}

struct Setup<'a> {
    ctl: &'a UdpSocket,
    target: SocketAddr,
    codec_a: Codec,
    codec_b: Codec,
    ptime_ms: u32,
    /// Makes call-ids and cookies unique per run: rtpengine answers a cookie it has seen in
    /// the last minute or so from its cache, whatever the command now says.
    nonce: u64,
}

impl Setup<'_> {
    fn call(&self, i: usize, a: SocketAddr, b: SocketAddr) -> io::Result<Call> {
        let call_id = format!("lt-{}-{:x}-{i}", std::process::id(), self.nonce);
        let text = Value::text;
        let mut offer = vec![
            ("command", text("offer")),
            ("call-id", text(&call_id)),
            ("from-tag", text("caller")),
            (
                "sdp",
                text(&sdp_for(
                    a,
                    self.codec_a,
                    self.codec_a.offer_pt(),
                    self.ptime_ms,
                )),
            ),
            ("flags", Value::List(vec![text("trust-address")])),
        ];
        if self.codec_a != self.codec_b {
            // rtpengine's form: the relay adds the codec to what it offers B and transcodes.
            offer.push((
                "codec",
                Value::dict([(
                    "transcode",
                    Value::List(vec![text(self.codec_b.encoding())]),
                )]),
            ));
        }
        let reply = ng(
            self.ctl,
            self.target,
            &format!("{:x}o{i}", self.nonce),
            &Value::dict(offer),
        )?;
        let answered = self.answer(i, &call_id, &reply, b);
        if answered.is_err() && reply.str("result") == Some("ok") {
            // The relay holds ports for the call from the offer on: give them back.
            self.delete(i, &call_id);
        }
        let (to_a_side, to_b_side, pt_b) = answered?;
        Ok(Call {
            call_id,
            // A sends to the port in the answer, B to the one in the offer.
            dest: [to_a_side, to_b_side],
            pt_b,
        })
    }

    /// The rest of a set-up once the offer is answered: where A and B send, and the payload
    /// type B uses.
    fn answer(
        &self,
        i: usize,
        call_id: &str,
        offer_reply: &Value,
        b: SocketAddr,
    ) -> io::Result<(SocketAddr, SocketAddr, u8)> {
        let text = Value::text;
        let (to_b_side, offered) = reply_sdp(offer_reply, "offer")?;
        let pt_b = payload_type_for(&offered, self.codec_b).ok_or_else(|| {
            let m = offered.media.iter().find(|m| m.kind == "audio");
            bad(format!(
                "the relay's offer to B does not include {} (no transcoding support?): it \
                 offers payload types {:?}",
                self.codec_b.encoding(),
                m.map(|m| m.formats.clone()).unwrap_or_default()
            ))
        })?;
        let reply = ng(
            self.ctl,
            self.target,
            &format!("{:x}a{i}", self.nonce),
            &Value::dict([
                ("command", text("answer")),
                ("call-id", text(call_id)),
                ("from-tag", text("caller")),
                ("to-tag", text("callee")),
                ("sdp", text(&sdp_for(b, self.codec_b, pt_b, self.ptime_ms))),
                ("flags", Value::List(vec![text("trust-address")])),
            ]),
        )?;
        let (to_a_side, _) = reply_sdp(&reply, "answer")?;
        Ok((to_a_side, to_b_side, pt_b))
    }

    /// Whether the relay answered (whatever it said).
    fn delete(&self, i: usize, call_id: &str) -> bool {
        ng(
            self.ctl,
            self.target,
            &format!("{:x}d{i}", self.nonce),
            &Value::dict([
                ("command", Value::text("delete")),
                ("call-id", Value::text(call_id)),
                ("from-tag", Value::text("caller")),
            ]),
        )
        .is_ok()
    }
}

fn shared_sockets(bind: &str, per_side: usize) -> io::Result<(Vec<UdpSocket>, Vec<usize>)> {
    let mut socks = Vec::with_capacity(2 * per_side);
    let mut dirs = Vec::with_capacity(2 * per_side);
    for dir in 0..2 {
        for _ in 0..per_side {
            let s = UdpSocket::bind(format!("{bind}:0"))?;
            s.set_nonblocking(true)?;
            mmsg::grow_buffers(&s, SHARED_SOCKET_BUFFER);
            mmsg::enable_rx_timestamps(&s)?;
            socks.push(s);
            dirs.push(dir);
        }
    }
    Ok((socks, dirs))
}

pub fn run(args: &RtpArgs) -> Result<RtpSummary, String> {
    let target: SocketAddr = args
        .ng
        .parse()
        .map_err(|_| format!("--ng {:?} is not IP:PORT", args.ng))?;
    if args.pps == 0 || args.streams == 0 || args.threads == 0 {
        return Err("--pps, --streams and --threads must be at least 1".into());
    }
    let codec_a = args.codec_a;
    let codec_b = args.codec_b.unwrap_or(codec_a);
    let transcoding = codec_a != codec_b;
    let ptime_ms = (1000 / args.pps).max(1);
    let frames = [
        codec_a.tone_frames(ptime_ms)?,
        codec_b.tone_frames(ptime_ms)?,
    ];
    mmsg::raise_fd_limit();
    let ctl = UdpSocket::bind(format!("{}:0", args.bind)).map_err(|e| format!("bind: {e}"))?;
    ctl.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut workers = Vec::with_capacity(args.threads);
    for _ in 0..args.threads {
        let (socks, recv_dir) = if args.sockets > 0 {
            shared_sockets(&args.bind, args.sockets).map_err(|e| format!("sockets: {e}"))?
        } else {
            (Vec::new(), Vec::new())
        };
        workers.push(Worker {
            socks,
            recv_dir,
            legs: Vec::new(),
        });
    }
    let setup = Setup {
        ctl: &ctl,
        target,
        codec_a,
        codec_b,
        ptime_ms,
        nonce: mmsg::mono_ns(),
    };
    let setup_start = Instant::now();
    let mut calls: Vec<(usize, String)> = Vec::with_capacity(args.streams);
    let mut setup_failed = 0;
    let mut first_error = None;
    let mut pt_b = None;
    let mut silent = 0;
    for i in 0..args.streams {
        let w = &mut workers[i % args.threads];
        let local = w.legs.len() / 2;
        let ends = match w.endpoint_pair(local, args.sockets, &args.bind) {
            Ok(e) => e,
            Err(e) => {
                setup_failed += 1;
                first_error.get_or_insert(format!("endpoint sockets: {e}"));
                continue;
            }
        };
        let addr = |k: usize| w.socks[k].local_addr();
        let call = match (addr(ends[0]), addr(ends[1])) {
            (Ok(a), Ok(b)) => setup.call(i, a, b),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let call = match call {
            Ok(c) => {
                silent = 0;
                c
            }
            Err(e) => {
                setup_failed += 1;
                first_error.get_or_insert(e.to_string());
                if e.kind() == io::ErrorKind::TimedOut {
                    silent += 1;
                    if silent == GIVE_UP_AFTER {
                        // A relay that stopped answering would cost 1.5 s per stream left.
                        setup_failed += args.streams - i - 1;
                        first_error = Some(format!("{e}: the relay stopped answering ng"));
                        break;
                    }
                }
                continue;
            }
        };
        pt_b = Some(call.pt_b);
        let stream = calls.len() as u32;
        for (dir, &sock) in ends.iter().enumerate() {
            let codec = if dir == 0 { codec_a } else { codec_b };
            w.legs.push(Leg {
                sock,
                dest: RawAddr::new(call.dest[dir]),
                pt: if dir == 0 {
                    codec.offer_pt()
                } else {
                    call.pt_b
                },
                ssrc: 0x4D47_0000 ^ (stream << 1) ^ dir as u32,
                seq: (stream as u16).wrapping_mul(7919),
                ts: stream.wrapping_mul(104_729),
                ts_step: codec.rtp_clock() / args.pps,
                frames: dir,
                frame: stream as usize,
                stamped: !transcoding,
                stream,
                // Set below, once the number of streams is known.
                phase_ns: 0,
                dir,
            });
        }
        calls.push((i, call.call_id));
    }
    let setup_s = setup_start.elapsed().as_secs_f64();
    if calls.is_empty() {
        return Err(format!(
            "no stream could be set up: {}",
            first_error.unwrap_or_default()
        ));
    }
    let period = 1_000_000_000 / u64::from(args.pps);
    let slots = 2 * calls.len() as u64;
    for w in &mut workers {
        for l in &mut w.legs {
            l.phase_ns = (2 * u64::from(l.stream) + l.dir as u64) * period / slots;
        }
    }
    let workers_phases: Vec<u64> = workers
        .iter()
        .flat_map(|w| w.legs.iter().map(|l| l.phase_ns))
        .collect();
    // Every thread starts on the same schedule, a little ahead so all are asleep in time.
    let t0 = mmsg::mono_ns() + 20_000_000;
    let sched = Schedule {
        t0,
        end: t0 + (args.duration * 1e9) as u64,
        period,
        t0_real: mmsg::real_ns() + t0.saturating_sub(mmsg::mono_ns()),
        tick: args.tick_us * 1000,
        spin: args.spin_us * 1000,
    };
    let relay_cpu = || args.relay_pid.and_then(procstat::process_cpu_ns);
    // Taken at t0, not now: the relay is idle in between.
    mmsg::sleep_until(t0.saturating_sub(1_000_000));
    let relay_before = relay_cpu();
    let relay_core = args.relay_pid.and_then(procstat::single_cpu_of);
    let softirq_before = relay_core.and_then(procstat::cpu_irq_ns);
    let busy_before = procstat::machine_busy_ns();
    let irq_before = procstat::machine_irq_ns();
    let steal_before = procstat::machine_steal_ns();
    let cpu_before = cpu_seconds();
    let media_start = Instant::now();
    let results: Vec<io::Result<WorkerResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|w| {
                let (sched, frames) = (&sched, &frames);
                s.spawn(move || w.run(sched, frames))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("worker thread panicked")))
            })
            .collect()
    });
    let media_s = media_start.elapsed().as_secs_f64();
    let generator_cpu_s = cpu_seconds() - cpu_before;
    let relay_cpu_s = match (relay_before, relay_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    let machine_irq_s = match (irq_before, procstat::machine_irq_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    let machine_steal_s = match (steal_before, procstat::machine_steal_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    let relay_softirq_s = match (softirq_before, relay_core.and_then(procstat::cpu_irq_ns)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    let machine_busy_s = match (busy_before, procstat::machine_busy_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    let mut silent = 0;
    for (i, call_id) in &calls {
        if setup.delete(*i, call_id) {
            silent = 0;
        } else {
            silent += 1;
            if silent == GIVE_UP_AFTER {
                break;
            }
        }
    }
    let mut counts = Counts::default();
    let (mut latency, mut lag) = (Hist::new(), Hist::new());
    let mut drops = 0;
    let mut busy_ns = 0;
    let mut by_second: Vec<(u64, u64)> = Vec::new();
    let mut busiest_ns = 0;
    for r in results {
        let r = r.map_err(|e| format!("media loop: {e}"))?;
        for d in 0..2 {
            counts.sent[d] += r.counts.sent[d];
            counts.received[d] += r.counts.received[d];
        }
        counts.send_errors += r.counts.send_errors;
        counts.recv_errors += r.counts.recv_errors;
        latency.merge(&r.latency);
        if by_second.len() < r.by_second.len() {
            by_second.resize(r.by_second.len(), (0, 0));
        }
        for (a, b) in by_second.iter_mut().zip(&r.by_second) {
            a.0 += b.0;
            a.1 += b.1;
        }
        lag.merge(&r.lag);
        drops += r.drops;
        busy_ns += r.busy_ns;
        busiest_ns = busiest_ns.max(r.busy_ns);
    }
    let sent = counts.sent[0] + counts.sent[1];
    let received = counts.received[0] + counts.received[1];
    let lost = sent.saturating_sub(received);
    let lag_p99 = lag.pct(0.99).unwrap_or(0);
    let run_ns = sched.end - sched.t0;
    let scheduled: u64 = workers_phases
        .iter()
        .map(|&phase| (run_ns.saturating_sub(phase)).div_ceil(period))
        .sum();
    // Media phase: from t0 (1 ms after the clock was read) to the end of the drain.
    let media_s = (media_s - 0.001).max(1e-3);
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let relay_us_per_packet = relay_cpu_s.map(|c| round3(c * 1e6 / received.max(1) as f64));
    // What neither the relay nor the generator used: other processes on the machine (a build,
    // say) compete for the same cores and make the run suspect. Interrupt and softirq time is
    // in the machine's busy time but in no process's, so it is left out here too.
    let other_cpu_s = machine_busy_s.map(|b| {
        let irq = machine_irq_s.unwrap_or(0.0);
        round3((b - irq - generator_cpu_s - relay_cpu_s.unwrap_or(0.0)).max(0.0))
    });
    Ok(RtpSummary {
        streams: calls.len(),
        pps_per_direction: args.pps,
        duration_s: args.duration,
        sent,
        received,
        lost,
        loss_pct: if sent == 0 {
            0.0
        } else {
            (lost as f64 * 1e6 / sent as f64).round() / 1e4
        },
        latency_us_p50: latency.pct(0.5),
        latency_us_p99: latency.pct(0.99),
        latency_us_p999: latency.pct(0.999),
        latency_us_max: (latency.n > 0).then_some(latency.max),
        latency_samples: latency.n,
        latency_us_mean_by_s: (latency.n > 0).then(|| {
            by_second
                .iter()
                .map(|&(sum, n)| sum.checked_div(n))
                .collect()
        }),
        sent_a_to_b: counts.sent[0],
        // B's sockets receive what A sent.
        received_a_to_b: counts.received[1],
        sent_b_to_a: counts.sent[1],
        received_b_to_a: counts.received[0],
        codec_a: codec_a.encoding(),
        codec_b: codec_b.encoding(),
        transcoding,
        payload_type_b: pt_b,
        setup_failed,
        setup_error: first_error,
        setup_s: (setup_s * 1000.0).round() / 1000.0,
        threads: args.threads,
        sockets_per_side: args.sockets,
        send_errors: counts.send_errors,
        recv_errors: counts.recv_errors,
        generator_drops: drops,
        send_lag_us_p99: lag_p99,
        send_lag_us_max: lag.max,
        generator_cpu_s: (generator_cpu_s * 1000.0).round() / 1000.0,
        generator_cpu_pct: (generator_cpu_s * 1000.0 / media_s).round() / 10.0,
        generator_busy_pct: (busy_ns as f64 / 1e6 / args.duration).round() / 10.0,
        generator_saturated: busiest_ns as f64 > SATURATED_BUSY * args.duration * 1e9
            || (sent as f64) < SATURATED_SENT * scheduled as f64
            || drops > 0,
        scheduled,
        relay_pid: args.relay_pid,
        relay_cpu_s: relay_cpu_s.map(round3),
        relay_cpu_us_per_packet: relay_us_per_packet,
        relay_cpu_pct: relay_cpu_s.map(|c| (c * 1000.0 / media_s).round() / 10.0),
        relay_cpu_softirq_s: relay_softirq_s.map(round3),
        media_s: round3(media_s),
        other_cpu_s,
        machine_steal_s: machine_steal_s.map(round3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles() {
        let mut h = Hist::new();
        assert_eq!(h.pct(0.5), None);
        for us in 1..=1000 {
            h.add(us);
        }
        h.add(250_000);
        assert_eq!(h.pct(0.5), Some(501));
        assert_eq!(h.pct(0.99), Some(991));
        assert_eq!(h.pct(1.0), Some(250_000));
        assert_eq!(h.max, 250_000);
        // Beyond 100 ms to the millisecond, beyond the range only the max.
        let mut h = Hist::new();
        for _ in 0..3 {
            h.add(500_700);
        }
        h.add(20_000_000_000);
        assert_eq!(h.pct(0.5), Some(500_000));
        assert_eq!(h.pct(1.0), Some(20_000_000_000));
    }

    #[test]
    fn stamp_survives_a_plain_relay_and_skips_extensions() {
        let mut leg = Leg {
            sock: 0,
            dest: RawAddr::new(SocketAddr::from(([127, 0, 0, 1], 9))),
            pt: 0,
            ssrc: 1,
            seq: 0,
            ts: 0,
            ts_step: 160,
            frames: 0,
            frame: 0,
            stamped: true,
            stream: 3,
            phase_ns: 0,
            dir: 0,
        };
        let frames = [vec![vec![0xFFu8; 160]], vec![vec![0xD5u8; 160]]];
        let mut buf = [0u8; 256];
        let n = build(&mut leg, &mut buf, &frames, 123_456_789);
        assert_eq!(n, 172);
        assert_eq!(stamp_of(&buf[..n]), Some(123_456_789));
        // The same payload behind one CSRC and a one-word extension.
        let mut ext = buf[..12].to_vec();
        ext[0] |= 0x11;
        ext.extend_from_slice(&[0, 0, 0, 9, 0xBE, 0xDE, 0, 1, 1, 2, 3, 4]);
        ext.extend_from_slice(&buf[12..n]);
        assert_eq!(stamp_of(&ext), Some(123_456_789));
        leg.stamped = false;
        let n = build(&mut leg, &mut buf, &frames, 1);
        assert_eq!(stamp_of(&buf[..n]), None);
    }

    #[test]
    fn payload_type_from_the_relays_offer() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 0 8 97 101\r\na=rtpmap:97 opus/48000/2\r\n\
                   a=rtpmap:101 telephone-event/8000\r\n";
        let s = SessionDescription::parse(sdp.as_bytes()).expect("sdp");
        assert_eq!(payload_type_for(&s, Codec::Pcmu), Some(0));
        assert_eq!(payload_type_for(&s, Codec::Pcma), Some(8));
        assert_eq!(payload_type_for(&s, Codec::Opus), Some(97));
    }
}
