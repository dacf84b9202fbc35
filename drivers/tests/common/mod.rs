//! The whole gateway in virtual time: core's endpoint (registrar, B2BUA), the media engine's
//! sessions and relay, line drivers behind their interworking functions, and a SIP phone (the
//! core user agent) sending and receiving RTP, connected by an in-memory network with 1 ms of
//! latency. Nothing reads a clock; a run is a function of its seed.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_core::admission::{Admission, EmergencyNumbers, DEFAULT_EMERGENCY};
use mgw_core::auth::NonceKey;
use mgw_core::call::dialplan::{DialPlan, Rule, Target};
use mgw_core::call::peer::{Peer, Peers};
use mgw_core::call::{CallConfig, CallEvent, MediaOp, MediaResult, MediaTotals};
use mgw_core::directory::{Account, AccountState, Directory, LogOn};
use mgw_core::endpoint::{Endpoint, EndpointConfig, Origin};
use mgw_core::licence::LicencePool;
use mgw_core::registrar::{Binding, LocationTable, Record, Transport};
use mgw_core::ua::{CallHandle, Credentials, Event, InviteParams, UaConfig, UserAgent};
use mgw_drivers::iwf::gateway::{LineGateway, LineGatewayConfig};
use mgw_drivers::Driver;
use mgw_media::codec::g711;
use mgw_media::relay::{PortPool, Relay, RelayConfig, Verdict};
use mgw_media::rtp::header::{write_header, RtpPacket};
use mgw_media::sdp::CodecName;
use mgw_media::session::{MediaOptions, Sessions};

pub const REALM: &str = "mgw.test";
pub const SWITCH: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)), 5060);
pub const PHONE: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)), 5060);
pub const PHONE_RTP: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)), 4000);
const LATENCY: Duration = Duration::from_millis(1);
const TONE_HZ: f64 = 1004.0;

fn line_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, i as u8 + 1], port))
}

struct Line {
    gw: LineGateway,
    sip: SocketAddr,
    rtp: Vec<SocketAddr>,
}

/// The phone's media: a 1004 Hz tone out (when `talking`), what comes back decoded.
#[derive(Default)]
pub struct PhoneAudio {
    pub remote: Option<SocketAddr>,
    pub talking: bool,
    pub received: Vec<i16>,
    pub packets_in: usize,
    sent: u32,
    next_tick: Option<Instant>,
}

/// A datagram in flight: delivery time, sequence (ties in send order), from, to, bytes.
type Datagram = (Instant, u64, SocketAddr, SocketAddr, Vec<u8>);

pub struct Sim {
    pub now: Instant,
    pub t0: Instant,
    ep: Endpoint<SocketAddr>,
    relay: Relay,
    ports: PortPool,
    sessions: Sessions,
    lines: Vec<Line>,
    pub phone: UserAgent<SocketAddr>,
    pub events: Vec<Event>,
    pub calls: Vec<CallEvent>,
    pub audio: PhoneAudio,
    /// What crossed the network (first line of each SIP message, with its time): two runs
    /// with one seed must give the same trace.
    pub trace: Vec<String>,
    queue: BinaryHeap<Reverse<Datagram>>,
    seq: u64,
    buf: Vec<u8>,
}

impl Sim {
    /// Alice (number 200, log-on alice/wonder) is registered at `PHONE`. Each driver gets
    /// `channels` RTP slots and, with `prefix`, a dial rule `prefix` + number.
    pub fn new(drivers: Vec<(Box<dyn Driver>, u32, Option<&str>)>, seed: u64, t0: Instant) -> Sim {
        let directory = Arc::new(Directory::new());
        directory.put_account(Account::new(
            1,
            "alice",
            "200",
            AccountState::Enabled,
            None,
            vec![],
        ));
        directory.insert(LogOn::new(1, "alice", "wonder", "200", 1, REALM));
        let location = Arc::new(LocationTable::new());
        location.set_number("alice", "200");
        location.update("alice", |_| Record {
            bindings: vec![Binding {
                contact: "sip:alice@10.0.0.3:5060".into(),
                instance: None,
                reg_id: None,
                path: Box::new([]),
                q: 1000,
                call_id: "reg-alice".into(),
                cseq: 1,
                expires_at_ms: u64::MAX / 2,
                updated_ms: 0,
                source: PHONE,
                transport: Transport::Udp,
                user_agent: "sim".into(),
            }],
        });
        let mut peers = Vec::new();
        let mut rules = Vec::new();
        let mut lines = Vec::new();
        for (i, (driver, channels, prefix)) in drivers.into_iter().enumerate() {
            let sip = line_addr(i, 5060);
            let rtp: Vec<SocketAddr> = (0..channels)
                .map(|k| line_addr(i, 40000 + k as u16))
                .collect();
            let mut peer = Peer::new(driver.name(), sip, Some(channels));
            peer.numbers = driver.numbers();
            if let Some(p) = prefix {
                rules.push(Rule {
                    prefix: p.to_string(),
                    strip_prefix: true,
                    target: Target::Trunk {
                        name: driver.name().to_string(),
                        prepend: String::new(),
                    },
                });
            }
            peers.push(peer);
            let gw = LineGateway::new(
                driver,
                LineGatewayConfig {
                    sip,
                    switch: SWITCH,
                    domain: REALM.into(),
                    rtp: rtp.clone(),
                },
                seed.wrapping_add(i as u64 + 1),
                t0,
            );
            lines.push(Line { gw, sip, rtp });
        }
        let ep = Endpoint::with_switch(
            EndpointConfig {
                domain: REALM.into(),
                server: "mgw-sim".into(),
                nonce_lifetime: Duration::from_secs(3600),
                nonce_key: NonceKey::new([7; 32]),
                sha256_first: false,
                md5_only_user_agents: vec![],
                epoch: t0,
                epoch_unix_ms: 1_700_000_000_000,
                timers: Default::default(),
                registrar: Default::default(),
                directory: directory.clone(),
                location,
                nonce_counts: Default::default(),
                admission: Admission::new(
                    directory,
                    Arc::new(LicencePool::new(10)),
                    EmergencyNumbers::new(&DEFAULT_EMERGENCY),
                ),
                calls: CallConfig {
                    domain: REALM.into(),
                    local: SWITCH.to_string(),
                    dial_plan: DialPlan {
                        rules,
                        ..DialPlan::default()
                    },
                    peers: Peers::new(peers),
                    ..CallConfig::default()
                },
                worker: 0,
            },
            Box::new(|a, _| a),
        );
        let phone = UserAgent::new(UaConfig {
            local: PHONE.to_string(),
            user_agent: "sim-phone".into(),
            seed: seed ^ 0x5eed,
            ..UaConfig::default()
        });
        Sim {
            now: t0,
            t0,
            ep,
            relay: Relay::new(RelayConfig::default(), t0),
            ports: PortPool::new(30000, 30999),
            sessions: Sessions::new(SWITCH.ip(), 5),
            lines,
            phone,
            events: Vec::new(),
            calls: Vec::new(),
            audio: PhoneAudio::default(),
            trace: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            buf: vec![0u8; 4096],
        }
    }

    /// The phone's SDP: PCMU at `PHONE_RTP`.
    pub fn phone_sdp() -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
            ip = PHONE_RTP.ip(),
            port = PHONE_RTP.port()
        )
    }

    /// Alice dials `number`.
    pub fn dial(&mut self, number: &str) -> CallHandle {
        let target = format!("sip:{number}@{REALM}");
        let mut p = InviteParams::new(
            &target,
            &format!("sip:alice@{REALM}"),
            &Self::phone_sdp(),
            SWITCH,
        );
        p.credentials = Some(Credentials {
            username: "alice".into(),
            password: "wonder".into(),
        });
        let h = self.phone.invite(p, self.now).expect("invite");
        self.pump();
        h
    }

    pub fn act(&mut self, line: usize, cmd: mgw_drivers::SimCommand) -> Result<(), String> {
        let r = self.lines[line].gw.simulate(cmd, self.now);
        self.pump();
        r
    }

    pub fn answer_incoming(&mut self, call: CallHandle) {
        self.phone
            .answer(call, &Self::phone_sdp(), self.now)
            .expect("answer");
        self.pump();
    }

    pub fn hangup(&mut self, call: CallHandle) {
        self.phone.hangup(call, Some(16), self.now).expect("hangup");
        self.audio.remote = None;
        self.pump();
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.queue
            .push(Reverse((self.now + LATENCY, self.seq, from, to, bytes)));
    }

    /// Everything the parts have to say, until all are quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.ep.poll_transmit() {
                busy = true;
                self.send(SWITCH, t.to, t.bytes.to_vec());
            }
            while let Some(e) = self.ep.poll_call_event() {
                self.calls.push(e);
            }
            while let Some(req) = self.ep.poll_media() {
                busy = true;
                let now = self.now;
                let result = match req.op {
                    MediaOp::Offer {
                        from_tag,
                        sdp,
                        transcode,
                    } => {
                        let options = MediaOptions {
                            transcode: if transcode {
                                vec![
                                    CodecName::Pcma,
                                    CodecName::Pcmu,
                                    CodecName::G722,
                                    CodecName::G726_32,
                                ]
                            } else {
                                vec![]
                            },
                            ..MediaOptions::default()
                        };
                        self.sessions
                            .offer(
                                &req.call,
                                &from_tag,
                                &sdp,
                                &options,
                                &mut self.relay,
                                &mut self.ports,
                                now,
                            )
                            .map(MediaResult::Sdp)
                    }
                    MediaOp::Answer { to_tag, sdp } => self
                        .sessions
                        .answer(
                            &req.call,
                            Some(&to_tag),
                            &sdp,
                            &MediaOptions::default(),
                            &mut self.relay,
                            now,
                        )
                        .map(MediaResult::Sdp),
                    MediaOp::Finish => self
                        .sessions
                        .delete(&req.call, &mut self.relay, &mut self.ports)
                        .map(|_| MediaResult::Finished(MediaTotals::default())),
                };
                let result = result.unwrap_or_else(|e| MediaResult::Failed(e.to_string()));
                self.ep.on_media(req.ticket, result, now);
            }
            for i in 0..self.lines.len() {
                while let Some(t) = self.lines[i].gw.poll_transmit() {
                    busy = true;
                    let from = match t.slot {
                        None => self.lines[i].sip,
                        Some(s) => self.lines[i].rtp[s],
                    };
                    self.send(from, t.to, t.bytes);
                }
            }
            while let Some(t) = self.phone.poll_transmit() {
                busy = true;
                self.send(PHONE, t.to, t.bytes.to_vec());
            }
            while let Some(e) = self.phone.poll_event() {
                busy = true;
                match &e {
                    Event::Answered { sdp: Some(sdp), .. }
                    | Event::Confirmed { sdp: Some(sdp), .. } => {
                        self.audio.remote = sdp_media(sdp);
                    }
                    Event::Incoming { sdp: Some(sdp), .. } => {
                        self.audio.remote = sdp_media(sdp);
                    }
                    Event::Ended { .. } => self.audio.remote = None,
                    _ => {}
                }
                self.events.push(e);
            }
            if !busy {
                return;
            }
        }
    }

    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, mut bytes: Vec<u8>) {
        let now = self.now;
        if to == SWITCH {
            self.trace_sip(from, to, &bytes);
            let o = Origin {
                reply_to: from,
                source: from,
                reliable: false,
            };
            self.ep.on_message(&bytes, o, now);
        } else if to.ip() == SWITCH.ip() {
            let len = bytes.len();
            self.buf[..len].copy_from_slice(&bytes);
            let mut buf = std::mem::take(&mut self.buf);
            if let Verdict::Forward {
                from_port,
                to: dst,
                len,
            } = self.relay.on_datagram(to.port(), from, &mut buf, len, now)
            {
                let out = buf[..len].to_vec();
                self.send(SocketAddr::new(SWITCH.ip(), from_port), dst, out);
            }
            let mut extra = vec![0u8; 2048];
            while let Some((port, dst, n)) = self.relay.poll_extra(&mut extra) {
                let out = extra[..n].to_vec();
                self.send(SocketAddr::new(SWITCH.ip(), port), dst, out);
            }
            self.buf = buf;
        } else if to == PHONE {
            self.trace_sip(from, to, &bytes);
            let o = Origin {
                reply_to: from,
                source: from,
                reliable: false,
            };
            self.phone.on_message(&bytes, o, now);
        } else if to == PHONE_RTP {
            if let Ok(p) = RtpPacket::parse(&mut bytes) {
                if p.payload_type() == 0 {
                    let mut pcm = vec![0i16; p.payload().len()];
                    g711::decode_ulaw(p.payload(), &mut pcm);
                    self.audio.received.extend_from_slice(&pcm);
                    self.audio.packets_in += 1;
                }
            }
        } else if let Some(i) = self.lines.iter().position(|l| l.sip == to) {
            self.trace_sip(from, to, &bytes);
            self.lines[i].gw.on_sip(&bytes, from, now);
        } else if let Some((i, slot)) = self
            .lines
            .iter()
            .enumerate()
            .find_map(|(i, l)| l.rtp.iter().position(|a| *a == to).map(|s| (i, s)))
        {
            self.lines[i].gw.on_rtp(slot, &mut bytes, from, now);
        }
        self.pump();
    }

    fn trace_sip(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let first = bytes.split(|b| *b == b'\r').next().unwrap_or_default();
        let ms = self.now.duration_since(self.t0).as_micros();
        self.trace.push(format!(
            "{ms} {from} -> {to} {}",
            String::from_utf8_lossy(first)
        ));
    }

    /// The phone's next 20 ms frame of tone (or silence) to its call's media address.
    fn phone_tick(&mut self) {
        let Some(to) = self.audio.remote else {
            self.audio.next_tick = None;
            return;
        };
        let i = self.audio.sent;
        let pcm: Vec<i16> = (0..160)
            .map(|k| {
                if self.audio.talking {
                    let t = f64::from(i * 160 + k) / 8000.0;
                    (8000.0 * (std::f64::consts::TAU * TONE_HZ * t).sin()) as i16
                } else {
                    0
                }
            })
            .collect();
        let mut pkt = vec![0u8; 172];
        write_header(&mut pkt, i == 0, 0, i as u16, i * 160, 0x0A11CE);
        g711::encode_ulaw(&pcm, &mut pkt[12..]);
        self.audio.sent += 1;
        self.send(PHONE_RTP, to, pkt);
        self.audio.next_tick = Some(self.now + Duration::from_millis(20));
    }

    fn next_event(&self) -> Option<Instant> {
        let tick = match (self.audio.remote, self.audio.next_tick) {
            (Some(_), Some(t)) => Some(t),
            (Some(_), None) => Some(self.now),
            _ => None,
        };
        [
            self.queue.peek().map(|Reverse(e)| e.0),
            self.ep.next_deadline(),
            self.relay.next_deadline(self.now),
            self.phone.poll_timeout(),
            tick,
        ]
        .into_iter()
        .flatten()
        .chain(self.lines.iter().filter_map(|l| l.gw.poll_timeout()))
        .min()
    }

    /// Runs the whole system for `d` of virtual time.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.next_event().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            let now = self.now;
            while self.queue.peek().is_some_and(|Reverse(e)| e.0 <= now) {
                let Some(Reverse((_, _, from, to, bytes))) = self.queue.pop() else {
                    break;
                };
                self.deliver(from, to, bytes);
            }
            if self.ep.next_deadline().is_some_and(|t| t <= now) {
                self.ep.on_timeout(now);
            }
            if self.relay.next_deadline(now).is_some_and(|t| t <= now) {
                self.relay.on_timeout(now);
            }
            if self.phone.poll_timeout().is_some_and(|t| t <= now) {
                self.phone.handle_timeout(now);
            }
            for l in &mut self.lines {
                if l.gw.poll_timeout().is_some_and(|t| t <= now) {
                    l.gw.handle_timeout(now);
                }
            }
            if self.audio.remote.is_some() && self.audio.next_tick.is_none_or(|t| t <= now) {
                self.phone_tick();
            }
            self.pump();
        }
        self.now = end;
    }

    /// The share of the energy the phone received over its last `ms` at 1004 Hz.
    pub fn tone_share_last(&self, ms: usize) -> f64 {
        let n = (ms * 8).min(self.audio.received.len());
        let x = &self.audio.received[self.audio.received.len() - n..];
        let coeff = 2.0 * (std::f64::consts::TAU * TONE_HZ / 8000.0).cos();
        let (mut s1, mut s2, mut e) = (0f64, 0f64, 0f64);
        for v in x {
            let v = f64::from(*v);
            e += v * v;
            let s0 = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * p / (x.len().max(1) as f64 * e.max(1.0))
    }

    /// Line `i`'s recent signalling (ISDN: D-channel frames with their Q.931 messages).
    pub fn signalling(&self, i: usize) -> Vec<String> {
        self.lines[i].gw.signalling_log(1000)
    }

    pub fn ended(&self, call: CallHandle) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| matches!(e, Event::Ended { call: c, .. } if *c == call))
    }

    pub fn answered(&self, call: CallHandle) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Answered { call: c, .. } if *c == call))
    }

    pub fn incoming(&self) -> Option<CallHandle> {
        self.events.iter().rev().find_map(|e| match e {
            Event::Incoming { call, .. } => Some(*call),
            _ => None,
        })
    }
}

/// Where an SDP wants audio.
fn sdp_media(sdp: &str) -> Option<SocketAddr> {
    let d = mgw_media::sdp::SessionDescription::parse(sdp.as_bytes()).ok()?;
    let i = d
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)?;
    Some(SocketAddr::new(d.media_address(i)?, d.media[i].port))
}
