//! The RTP relay, sans-IO: sessions of two legs, each leg a local RTP/RTCP port pair on this
//! worker. A packet comes in as the receive buffer itself; the relay checks where it came
//! from (symmetric latching), rewrites the header (payload type, SSRC, sequence, timestamp) and,
//! for G.711 A-law <-> u-law, the payload, all in that buffer, and says where to send it.
//! Nothing is allocated or copied per packet; `media/tests/no_alloc.rs` proves it.

pub(crate) mod audio;
mod extras;
mod flow;
mod latch;
mod ports;

pub use audio::{AudioPlan, EventFormat};
pub use flow::{Flow, FlowSpec, Transcode};
pub use latch::Latch;
pub use ports::{PortChange, PortPool};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rtp::header::{is_rtcp, RtpPacket};
use crate::rtp::stats::StreamStats;
use crate::transcode::TranscodeError;
use extras::Extras;

/// Settings of a worker's relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// No packet in either direction for this long raises [`MediaEvent::Inactive`].
    pub inactivity: Duration,
    /// A latched peer silent this long may be replaced by a new source (NAT rebinding).
    pub relatch_after: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            inactivity: Duration::from_secs(60),
            relatch_after: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// The two legs of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One leg as signalling describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegSpec {
    /// mgw's RTP port for this leg (RTCP is the next port).
    pub local_rtp: u16,
    /// Where the far end said it receives RTP (its SDP), if known yet.
    pub remote: Option<SocketAddr>,
    /// Its RTCP address (a=rtcp, else RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// Accept media from any address and latch onto it (the far end is behind NAT).
    pub allow_nat: bool,
}

#[derive(Debug)]
struct Leg {
    spec: LegSpec,
    rtp: Latch,
    rtcp: Latch,
}

impl Leg {
    fn new(spec: LegSpec) -> Leg {
        Leg {
            rtp: Latch::new(spec.remote, spec.allow_nat),
            rtcp: Latch::new(
                spec.remote_rtcp.or(spec
                    .remote
                    .map(|r| SocketAddr::new(r.ip(), r.port().wrapping_add(1)))),
                spec.allow_nat,
            ),
            spec,
        }
    }
}

#[derive(Debug)]
struct Session {
    legs: [Leg; 2],
    /// `flows[0]`: A -> B, `flows[1]`: B -> A.
    flows: [Flow; 2],
    last_activity: Instant,
    inactive_reported: bool,
    rtcp_packets: u64,
    dropped: u64,
}

/// What to do with a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) first `len` bytes of the buffer from mgw's port `from_port` to `to`.
    Forward {
        from_port: u16,
        to: SocketAddr,
        len: usize,
    },
    Drop(DropReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// No session uses the port.
    UnknownPort,
    /// Not RTP version 2, or a broken header.
    Malformed,
    /// From an address other than the leg's peer.
    NotFromPeer,
    /// The other leg's address is not known yet.
    NoDestination,
    /// A payload type not negotiated for this direction.
    PayloadType,
    /// Taken by a transcoder that has not got a whole outgoing packet yet (re-framing to a
    /// longer ptime), or a late packet a decoder can no longer use. Not an error.
    Buffered,
    /// A payload its decoder rejects.
    Undecodable,
}

/// How one direction of a session is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectionPlan {
    /// Header rewrite, and G.711 A-law <-> u-law in place: no copy.
    Relay(FlowSpec),
    /// Decode and re-encode (codecs differ, or DTMF must change form).
    Audio(AudioPlan),
}

/// Raised to signalling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// No media either way for the configured time: the call is probably dead.
    Inactive { session: SessionId, idle: Duration },
}

/// Counters of one session, for queries and CDRs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStats {
    /// Reception on leg A (A -> B) and on leg B (B -> A).
    pub a_to_b: StreamStats,
    pub b_to_a: StreamStats,
    pub rtcp_packets: u64,
    /// Packets that reached this session's ports and were not relayed (wrong source, broken
    /// header, payload type not negotiated, no destination yet).
    pub dropped: u64,
}

/// One worker's relay.
pub struct Relay {
    cfg: RelayConfig,
    sessions: HashMap<SessionId, Session>,
    /// Local port -> (session, side, RTCP?).
    ports: HashMap<u16, (SessionId, Side, bool)>,
    events: VecDeque<MediaEvent>,
    next_id: u32,
    epoch: Instant,
    /// Packets beyond the one sent in place (see `mgw_engine`'s `poll_extra`).
    extras: Extras,
}

impl Relay {
    pub fn new(cfg: RelayConfig, now: Instant) -> Relay {
        Relay {
            cfg,
            sessions: HashMap::new(),
            ports: HashMap::new(),
            events: VecDeque::new(),
            next_id: 1,
            epoch: now,
            extras: Extras::new(),
        }
    }

    /// Creates a session between two legs; flows start as plain relay of the same payload
    /// types until [`Relay::set_flow`] says otherwise.
    pub fn create(&mut self, a: LegSpec, b: LegSpec, now: Instant) -> SessionId {
        let id = SessionId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let seed = u64::from(id.0) ^ now.duration_since(self.epoch).as_nanos() as u64;
        for (side, spec) in [(Side::A, a), (Side::B, b)] {
            self.ports.insert(spec.local_rtp, (id, side, false));
            self.ports
                .insert(spec.local_rtp.wrapping_add(1), (id, side, true));
        }
        self.sessions.insert(
            id,
            Session {
                legs: [Leg::new(a), Leg::new(b)],
                flows: [
                    Flow::new(FlowSpec::passthrough(8000), ssrc_from(seed)),
                    Flow::new(FlowSpec::passthrough(8000), ssrc_from(seed ^ 0x5DEE_CE66)),
                ],
                last_activity: now,
                inactive_reported: false,
                rtcp_packets: 0,
                dropped: 0,
            },
        );
        id
    }

    /// A re-offer or answer changed where leg `side` receives. The latch starts over; the
    /// outgoing SSRC, sequence and timestamp of both flows continue.
    pub fn update_leg(&mut self, id: SessionId, side: Side, spec: LegSpec) -> bool {
        let Some(s) = self.sessions.get_mut(&id) else {
            return false;
        };
        let old = s.legs[side.index()].spec.local_rtp;
        if old != spec.local_rtp {
            self.ports.remove(&old);
            self.ports.remove(&old.wrapping_add(1));
            self.ports.insert(spec.local_rtp, (id, side, false));
            self.ports
                .insert(spec.local_rtp.wrapping_add(1), (id, side, true));
        }
        s.legs[side.index()] = Leg::new(spec);
        true
    }

    /// Sets how packets arriving on `from` are turned into packets for the other side.
    pub fn set_flow(&mut self, id: SessionId, from: Side, spec: FlowSpec) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.flows[from.index()].respec(spec);
                true
            }
            None => false,
        }
    }

    /// Sets how one direction is handled. Building a decoding path allocates its codecs
    /// here, never per packet.
    pub fn set_direction(
        &mut self,
        id: SessionId,
        from: Side,
        plan: DirectionPlan,
        now: Instant,
    ) -> Result<bool, TranscodeError> {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let Some(s) = self.sessions.get_mut(&id) else {
            return Ok(false);
        };
        let flow = &mut s.flows[from.index()];
        match plan {
            DirectionPlan::Relay(spec) => flow.respec(spec),
            DirectionPlan::Audio(a) => flow.set_audio(a, now_ms)?,
        }
        Ok(true)
    }

    /// Whether a direction decodes (for queries and CDRs).
    pub fn decodes(&self, id: SessionId, from: Side) -> bool {
        self.sessions
            .get(&id)
            .is_some_and(|s| s.flows[from.index()].audio.is_some())
    }

    /// The next packet queued beyond the in-place ones: copied into `out`; returns the port
    /// to send from, the destination and the length.
    pub fn poll_extra(&mut self, out: &mut [u8]) -> Option<(u16, SocketAddr, usize)> {
        self.extras.pop(out)
    }

    /// Packets dropped because the queue of further packets was full.
    pub fn extras_dropped(&self) -> u64 {
        self.extras.dropped
    }

    pub fn delete(&mut self, id: SessionId) -> Option<SessionStats> {
        let stats = self.query(id);
        let s = self.sessions.remove(&id)?;
        for leg in &s.legs {
            self.ports.remove(&leg.spec.local_rtp);
            self.ports.remove(&leg.spec.local_rtp.wrapping_add(1));
        }
        stats
    }

    pub fn query(&self, id: SessionId) -> Option<SessionStats> {
        let s = self.sessions.get(&id)?;
        Some(SessionStats {
            a_to_b: s.flows[0].stats,
            b_to_a: s.flows[1].stats,
            rtcp_packets: s.rtcp_packets,
            dropped: s.dropped,
        })
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Handles one datagram received on mgw's `local_port` from `from`. `packet` is the
    /// receive buffer, rewritten in place (a transcoded packet longer than the datagram is
    /// dropped: use [`Relay::on_datagram`] with room to spare).
    pub fn on_packet(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        packet: &mut [u8],
        now: Instant,
    ) -> Verdict {
        let len = packet.len();
        self.on_datagram(local_port, from, packet, len, now)
    }

    /// Like [`Relay::on_packet`] for a datagram `buf[..len]` in a larger buffer: the rest of
    /// `buf` is room for a reply longer than the datagram.
    pub fn on_datagram(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Verdict {
        let v = self.route(local_port, from, buf, len.min(buf.len()), now);
        if matches!(v, Verdict::Drop(r) if r != DropReason::UnknownPort && r != DropReason::Buffered)
        {
            // Only the drop path pays for the second lookup.
            if let Some(s) = self
                .ports
                .get(&local_port)
                .and_then(|(id, _, _)| self.sessions.get_mut(id))
            {
                s.dropped += 1;
            }
        }
        v
    }

    fn route(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Verdict {
        let packet = &mut buf[..len];
        let Some(&(id, side, rtcp_port)) = self.ports.get(&local_port) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let relatch = self.cfg.relatch_after;
        // RTCP multiplexed on the RTP port (RFC 5761) is told apart by its packet type.
        let rtcp = rtcp_port || is_rtcp(packet);
        let (this, other) = match side {
            Side::A => {
                let [a, b] = &mut s.legs;
                (a, b)
            }
            Side::B => {
                let [a, b] = &mut s.legs;
                (b, a)
            }
        };
        let latch = if rtcp { &mut this.rtcp } else { &mut this.rtp };
        if !latch.accept(from, now, relatch) {
            return Verdict::Drop(DropReason::NotFromPeer);
        }
        let dest = if rtcp {
            other.rtcp.destination()
        } else {
            other.rtp.destination()
        };
        let Some(to) = dest else {
            return Verdict::Drop(DropReason::NoDestination);
        };
        let from_port = if rtcp && rtcp_port {
            other.spec.local_rtp.wrapping_add(1)
        } else {
            other.spec.local_rtp
        };
        s.last_activity = now;
        s.inactive_reported = false;
        if rtcp {
            if packet.len() < 8 || packet[0] >> 6 != 2 {
                return Verdict::Drop(DropReason::Malformed);
            }
            // The far end reports about the SSRC mgw sent it; the other end knows its own.
            let (this_flow, back_flow) = (&s.flows[side.index()], &s.flows[side.other().index()]);
            let sender = this_flow
                .in_ssrc()
                .map_or((0, 0), |i| (i, this_flow.out_ssrc));
            let reported = back_flow
                .in_ssrc()
                .map_or((0, 0), |i| (back_flow.out_ssrc, i));
            crate::rtp::rtcp::translate_ssrcs(packet, sender, reported);
            s.rtcp_packets += 1;
            return Verdict::Forward {
                from_port,
                to,
                len: packet.len(),
            };
        }
        let flow = &mut s.flows[side.index()];
        let elapsed_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        if flow.audio.is_some() {
            return decode_and_send(flow, buf, len, elapsed_ms, from_port, to, &mut self.extras);
        }
        let Ok(mut p) = RtpPacket::parse(packet) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !flow.forward(&mut p, elapsed_ms, len) {
            return Verdict::Drop(DropReason::PayloadType);
        }
        Verdict::Forward { from_port, to, len }
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When [`Relay::on_timeout`] should next run: once a second while sessions exist.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        (!self.sessions.is_empty()).then(|| now + Duration::from_secs(1))
    }

    /// Raises inactivity events (once per silence).
    pub fn on_timeout(&mut self, now: Instant) {
        for (id, s) in &mut self.sessions {
            let idle = now.saturating_duration_since(s.last_activity);
            if idle >= self.cfg.inactivity && !s.inactive_reported {
                s.inactive_reported = true;
                self.events
                    .push_back(MediaEvent::Inactive { session: *id, idle });
            }
        }
    }
}

/// The decoding path of a direction: what it makes of the packet goes out, the last packet
/// in place and any earlier ones through the extras queue (so they leave first).
fn decode_and_send(
    flow: &mut Flow,
    buf: &mut [u8],
    len: usize,
    now_ms: u64,
    from_port: u16,
    to: SocketAddr,
    extras: &mut Extras,
) -> Verdict {
    let (pt, seq, ts, ssrc, start, end) = match RtpPacket::parse(&mut buf[..len]) {
        Ok(p) => (
            p.payload_type(),
            p.sequence(),
            p.timestamp(),
            p.ssrc(),
            p.payload_offset(),
            p.payload_offset() + p.payload().len(),
        ),
        Err(_) => return Verdict::Drop(DropReason::Malformed),
    };
    let clock = u64::from(flow.clock_rate().max(1));
    flow.stats.record(seq, ts, now_ms * clock / 1000, len);
    flow.note_source(ssrc);
    let out_ssrc = flow.out_ssrc;
    let Some(audio) = flow.audio.as_mut() else {
        return Verdict::Drop(DropReason::PayloadType);
    };
    match audio.process(pt, seq, ts, &buf[start..end], out_ssrc) {
        Ok(true) => {}
        Ok(false) => return Verdict::Drop(DropReason::PayloadType),
        Err(_) => return Verdict::Drop(DropReason::Undecodable),
    }
    let mut last: Option<&[u8]> = None;
    for p in audio.outputs() {
        if let Some(prev) = last.replace(p) {
            extras.push(from_port, to, prev);
        }
    }
    let verdict = match last {
        Some(p) if p.len() <= buf.len() => {
            buf[..p.len()].copy_from_slice(p);
            Verdict::Forward {
                from_port,
                to,
                len: p.len(),
            }
        }
        Some(p) => {
            extras.push(from_port, to, p);
            Verdict::Drop(DropReason::Buffered)
        }
        None => Verdict::Drop(DropReason::Buffered),
    };
    flow.audio_sent(now_ms);
    verdict
}

/// A non-zero SSRC from a seed (splitmix64), so mgw's streams do not collide by construction.
fn ssrc_from(seed: u64) -> u32 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) as u32).max(1)
}
