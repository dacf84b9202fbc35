//! `mgw-loadtest floor`: the least a media relay can do, as the yardstick for a real relay's CPU
//! per packet. One thread, epoll, and per ready port one `recvmmsg` and one `sendmmsg` that
//! forwards every datagram unchanged, out of the other leg's port to the address that leg's SDP
//! named: no header rewrite, no source check, no statistics, no timers, no RTCP.
//!
//! Just enough of the ng protocol for `mgw-loadtest rtp` to drive it like mgw or rtpengine:
//! `ping`, `offer` (binds two ports, returns the SDP with the B-side port), `answer` (learns B,
//! returns the SDP with the A-side port) and `delete`. Codec options are ignored: it relays
//! payloads untouched. On SIGTERM or SIGINT it prints one JSON line with its counters.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mgw_media::ng::bencode::Value;
use mgw_media::sdp::{Connection, SessionDescription};
use serde::Serialize;

use crate::cli::FloorArgs;
use crate::mmsg::{self, Epoll, RawAddr, RecvBatch, SendBatch};
use crate::socket::cpu_seconds;

const NG_TOKEN: u64 = u64::MAX;
/// Each port carries one stream's packets, 50 a second: a batch rarely holds more than one,
/// but a stalled loop must still catch up in few calls.
const BATCH: usize = 32;
const SLOT: usize = 2048;

#[derive(Debug, Default, Serialize)]
pub struct FloorSummary {
    /// Datagrams forwarded, and those dropped because the other leg had not answered yet.
    pub forwarded: u64,
    pub no_peer: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub calls_created: u64,
    pub calls_max: usize,
    pub ng_requests: u64,
    pub cpu_s: f64,
}

struct Leg {
    sock: UdpSocket,
    /// The other leg's slot: what arrives here leaves through it.
    peer: usize,
    /// Where this leg's endpoint receives, from its SDP.
    endpoint: Option<RawAddr>,
}

struct Call {
    from_tag: String,
    /// Slots of the A-side and B-side ports.
    legs: [usize; 2],
}

struct Floor {
    advertised: IpAddr,
    first: u16,
    last: u16,
    next_port: u16,
    legs: Vec<Option<Leg>>,
    free: Vec<usize>,
    calls: HashMap<String, Call>,
    stats: FloorSummary,
}

fn error(reason: &str) -> Value {
    Value::dict([
        ("result", Value::text("error")),
        ("error-reason", Value::text(reason)),
    ])
}

impl Floor {
    /// The next port of the range that can be bound, round-robin; ports held by anything else
    /// are skipped.
    fn bind_next(&mut self) -> Option<UdpSocket> {
        let span = u32::from(self.last - self.first) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= self.last {
                self.first
            } else {
                port + 1
            };
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.advertised, port)) {
                if s.set_nonblocking(true).is_ok() {
                    return Some(s);
                }
            }
        }
        None
    }

    fn insert(&mut self, ep: &Epoll, leg: Leg) -> io::Result<usize> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.legs.push(None);
                self.legs.len() - 1
            }
        };
        ep.add(leg.sock.as_raw_fd(), slot as u64)?;
        self.legs[slot] = Some(leg);
        Ok(slot)
    }

    fn port(&self, slot: usize) -> u16 {
        self.legs[slot]
            .as_ref()
            .and_then(|l| l.sock.local_addr().ok())
            .map_or(0, |a| a.port())
    }

    fn set_endpoint(&mut self, slot: usize, to: SocketAddr) {
        if let Some(l) = self.legs[slot].as_mut() {
            l.endpoint = Some(RawAddr::new(to));
        }
    }

    fn command(&mut self, ep: &Epoll, cmd: &Value) -> Value {
        self.stats.ng_requests += 1;
        match cmd.str("command") {
            Some("ping") => Value::dict([("result", Value::text("pong"))]),
            Some("offer") => self.offer(ep, cmd),
            Some("answer") => self.answer(cmd),
            Some("delete") => self.delete(cmd),
            Some(other) => error(&format!("unsupported command {other:?}")),
            None => error("no command"),
        }
    }

    fn offer(&mut self, ep: &Epoll, cmd: &Value) -> Value {
        let (Some(call_id), Some(from_tag), Some(sdp)) =
            (cmd.str("call-id"), cmd.str("from-tag"), cmd.str("sdp"))
        else {
            return error("offer needs call-id, from-tag and sdp");
        };
        let Some((sdp, endpoint)) = parse(sdp) else {
            return error("cannot parse the SDP or it has no audio");
        };
        if let Some(c) = self.calls.get(call_id) {
            // A retransmitted offer: same ports.
            if c.from_tag != from_tag {
                return error("offer from another tag of an existing call");
            }
            let [a, b] = c.legs;
            self.set_endpoint(a, endpoint);
            return self.rewritten(sdp, self.port(b));
        }
        let (Some(sa), Some(sb)) = (self.bind_next(), self.bind_next()) else {
            return error("no free port in --ports");
        };
        let a = match self.insert(
            ep,
            Leg {
                sock: sa,
                peer: 0,
                endpoint: Some(RawAddr::new(endpoint)),
            },
        ) {
            Ok(s) => s,
            Err(e) => return error(&format!("epoll: {e}")),
        };
        let b = match self.insert(
            ep,
            Leg {
                sock: sb,
                peer: a,
                endpoint: None,
            },
        ) {
            Ok(s) => s,
            Err(e) => {
                self.remove(a);
                return error(&format!("epoll: {e}"));
            }
        };
        if let Some(l) = self.legs[a].as_mut() {
            l.peer = b;
        }
        self.calls.insert(
            call_id.to_string(),
            Call {
                from_tag: from_tag.to_string(),
                legs: [a, b],
            },
        );
        self.stats.calls_created += 1;
        self.stats.calls_max = self.stats.calls_max.max(self.calls.len());
        self.rewritten(sdp, self.port(b))
    }

    fn answer(&mut self, cmd: &Value) -> Value {
        let (Some(call_id), Some(sdp)) = (cmd.str("call-id"), cmd.str("sdp")) else {
            return error("answer needs call-id and sdp");
        };
        let Some(legs) = self.calls.get(call_id).map(|c| c.legs) else {
            return error("Unknown call-id");
        };
        let Some((sdp, endpoint)) = parse(sdp) else {
            return error("cannot parse the SDP or it has no audio");
        };
        self.set_endpoint(legs[1], endpoint);
        self.rewritten(sdp, self.port(legs[0]))
    }

    fn delete(&mut self, cmd: &Value) -> Value {
        let Some(call) = cmd.str("call-id").and_then(|c| self.calls.remove(c)) else {
            return error("Unknown call-id");
        };
        for slot in call.legs {
            self.remove(slot);
        }
        Value::dict([("result", Value::text("ok"))])
    }

    /// Closing the socket also takes it out of the epoll set.
    fn remove(&mut self, slot: usize) {
        if self.legs[slot].take().is_some() {
            self.free.push(slot);
        }
    }

    /// The SDP with this relay's address and `port` for the audio stream.
    fn rewritten(&self, mut sdp: SessionDescription, port: u16) -> Value {
        let conn = Some(Connection {
            address: self.advertised,
        });
        if sdp.connection.is_some() {
            sdp.connection = conn;
        }
        if let Some(m) = sdp
            .media
            .iter_mut()
            .find(|m| m.kind == "audio" && m.port != 0)
        {
            m.port = port;
            if m.connection.is_some() || sdp.connection.is_none() {
                m.connection = conn;
            }
            // No RTCP is relayed; do not name a port for it.
            m.rtcp = None;
        }
        Value::dict([
            ("result", Value::text("ok")),
            ("sdp", Value::text(&sdp.to_string())),
        ])
    }

    /// Moves everything waiting on `slot` out of its peer's port.
    fn forward(&mut self, slot: usize, rx: &mut RecvBatch, tx: &mut SendBatch) {
        let Some(leg) = self.legs.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let out = self.legs.get(leg.peer).and_then(Option::as_ref);
        loop {
            let n = match rx.recv(leg.sock.as_raw_fd()) {
                Ok(n) => n,
                Err(_) => {
                    self.stats.recv_errors += 1;
                    return;
                }
            };
            match out.and_then(|o| o.endpoint.as_ref().map(|e| (o, e))) {
                Some((o, dest)) => {
                    let items: Vec<(&RawAddr, &[u8])> =
                        (0..n).map(|i| (dest, rx.datagram(i))).collect();
                    let r = tx.send(o.sock.as_raw_fd(), &items);
                    self.stats.forwarded += r.sent as u64;
                    self.stats.send_errors += r.failed as u64;
                }
                None => self.stats.no_peer += n as u64,
            }
            if n < rx.capacity() {
                return;
            }
        }
    }
}

/// The SDP and where its first audio stream receives.
fn parse(sdp: &str) -> Option<(SessionDescription, SocketAddr)> {
    let s = SessionDescription::parse(sdp.as_bytes()).ok()?;
    let i = s
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)?;
    let to = SocketAddr::new(s.media_address(i)?, s.media[i].port);
    Some((s, to))
}

fn port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

/// Answers every ng datagram waiting on `ctl`.
fn serve_ng(floor: &mut Floor, ep: &Epoll, ctl: &UdpSocket, buf: &mut [u8]) {
    while let Ok((n, from)) = ctl.recv_from(buf) {
        let d = &buf[..n];
        let Some(space) = d.iter().position(|&b| b == b' ') else {
            continue;
        };
        let reply = match Value::parse(&d[space + 1..]) {
            Ok(cmd) => floor.command(ep, &cmd),
            Err(e) => error(&format!("cannot parse the bencoded command: {e}")),
        };
        let mut out = d[..=space].to_vec();
        reply.encode(&mut out);
        let _ = ctl.send_to(&out, from);
    }
}

pub fn run(args: &FloorArgs) -> Result<FloorSummary, String> {
    let ng: SocketAddr = args
        .ng
        .parse()
        .map_err(|_| format!("--ng {:?} is not IP:PORT", args.ng))?;
    let (first, last) = port_range(&args.ports)
        .ok_or_else(|| format!("--ports {:?} is not FIRST-LAST", args.ports))?;
    let advertised: IpAddr = args
        .bind
        .parse()
        .map_err(|_| format!("--bind {:?} is not an IP address", args.bind))?;
    mmsg::raise_fd_limit();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let ctl = UdpSocket::bind(ng).map_err(|e| format!("bind {ng}: {e}"))?;
    ctl.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut ep = Epoll::new(512).map_err(|e| e.to_string())?;
    ep.add(ctl.as_raw_fd(), NG_TOKEN)
        .map_err(|e| e.to_string())?;
    let mut floor = Floor {
        advertised,
        first,
        last,
        next_port: first,
        legs: Vec::new(),
        free: Vec::new(),
        calls: HashMap::new(),
        stats: FloorSummary::default(),
    };
    let mut rx = RecvBatch::new(BATCH, SLOT, false);
    let mut tx = SendBatch::new(BATCH);
    let mut ng_buf = vec![0u8; 65536];
    let cpu_before = cpu_seconds();
    while !stop.load(Ordering::Relaxed) {
        // The timeout only bounds how long a signal that raced the wait goes unnoticed.
        let ready = ep
            .wait(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut ng_ready = false;
        for token in ready {
            if token == NG_TOKEN {
                ng_ready = true;
            } else {
                floor.forward(token as usize, &mut rx, &mut tx);
            }
        }
        // After the media: a delete frees slots that later events of this round still name.
        if ng_ready {
            serve_ng(&mut floor, &ep, &ctl, &mut ng_buf);
        }
    }
    floor.stats.cpu_s = ((cpu_seconds() - cpu_before) * 1000.0).round() / 1000.0;
    Ok(floor.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(port_range("50000-59999"), Some((50000, 59999)));
        assert_eq!(port_range("5-5"), Some((5, 5)));
        assert_eq!(port_range("9-5"), None);
        assert_eq!(port_range("0-5"), None);
        assert_eq!(port_range("50000"), None);
    }
}
