//! One driver behind its interworking function: the driver's calls become SIP calls with the
//! switch (a [`UserAgent`] on the driver's own SIP address, which the switch knows as a peer),
//! its 20 ms frames become RTP on one socket per voice channel, and Q.850 causes travel in
//! `Reason` headers and status codes (RFC 3398, `mgw_core::call::cause`).
//!
//! Sans-IO like the driver: the host hands in SIP and RTP datagrams and the time, and sends
//! what [`LineGateway::poll_transmit`] gives, from the socket it names.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use mgw_core::call::cause::{q850_of_status, status_of_q850};
use mgw_core::endpoint::Origin;
use mgw_core::ua::{CallHandle, Ending, Event, InviteParams, UaConfig, UserAgent};

use super::media::{self, RtpOut};
use crate::line::{
    AudioCodec, CallRef, Cause, Driver, DriverStatus, LineEvent, Party, Progress, Setup, SimCommand,
};

#[derive(Clone, Debug)]
pub struct LineGatewayConfig {
    /// The driver's SIP address (the switch's peer address for it).
    pub sip: SocketAddr,
    /// The switch's SIP address.
    pub switch: SocketAddr,
    /// The switch's domain: request URIs towards it.
    pub domain: String,
    /// One RTP address per voice channel, in slot order.
    pub rtp: Vec<SocketAddr>,
}

/// A datagram to send: from the SIP socket (`slot` None) or a channel's RTP socket.
#[derive(Debug)]
pub struct LineTransmit {
    pub slot: Option<usize>,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
struct LineCall {
    line: CallRef,
    sip: CallHandle,
    slot: usize,
    /// The line codec, once known.
    codec: Option<AudioCodec>,
    /// Where the switch wants this call's RTP, and its payload type for the codec.
    remote: Option<(SocketAddr, u8)>,
    /// The switch's SDP offer (calls from the switch), kept to answer with its numbering.
    offer: Option<String>,
    /// `o=` session id of the SDP this side sends.
    sdp_id: u64,
    rtp: RtpOut,
    answered: bool,
    /// From the switch to the line (the UA answers) rather than from the line.
    to_line: bool,
}

pub struct LineGateway {
    driver: Box<dyn Driver>,
    ua: UserAgent<SocketAddr>,
    cfg: LineGatewayConfig,
    calls: Vec<LineCall>,
    slots: Vec<bool>,
    out: VecDeque<LineTransmit>,
    session: u64,
    buf: Vec<u8>,
}

impl LineGateway {
    pub fn new(
        driver: Box<dyn Driver>,
        cfg: LineGatewayConfig,
        seed: u64,
        _now: Instant,
    ) -> LineGateway {
        let ua = UserAgent::new(UaConfig {
            local: cfg.sip.to_string(),
            user_agent: format!("mgw-line/{}", driver.name()),
            seed,
            ..UaConfig::default()
        });
        LineGateway {
            slots: vec![false; cfg.rtp.len()],
            driver,
            ua,
            cfg,
            calls: Vec::new(),
            out: VecDeque::new(),
            session: seed & 0xffff,
            buf: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.driver.name()
    }

    pub fn numbers(&self) -> Vec<String> {
        self.driver.numbers()
    }

    pub fn status(&self) -> DriverStatus {
        self.driver.status()
    }

    pub fn signalling_log(&self, last: usize) -> Vec<String> {
        self.driver.signalling_log(last)
    }

    pub fn simulate(&mut self, cmd: SimCommand, now: Instant) -> Result<(), String> {
        let r = self.driver.simulate(cmd, now);
        self.pump(now);
        r
    }

    pub fn on_sip(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        // The line talks to its switch only: anything else could place calls on the line
        // past the switch's rules.
        if from != self.cfg.switch {
            return;
        }
        let origin = Origin {
            reply_to: from,
            source: from,
            reliable: false,
        };
        self.ua.on_message(bytes, origin, now);
        self.pump(now);
    }

    /// An RTP datagram on channel `slot`'s socket: the switch's audio for that call.
    pub fn on_rtp(&mut self, slot: usize, packet: &mut [u8], from: SocketAddr, now: Instant) {
        let Some(c) = self.calls.iter().find(|c| c.slot == slot) else {
            return;
        };
        let (Some((remote, pt)), true) = (c.remote, c.codec.is_some()) else {
            return;
        };
        // Only the media engine's port of this call may speak into the line (its address may
        // be advertised differently from the one it sends from, behind NAT).
        if from.port() != remote.port() {
            return;
        }
        let line = c.line;
        if let Some(p) = media::payload(packet, pt) {
            self.driver.send_audio(line, p, now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<LineTransmit> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.driver.poll_timeout(), self.ua.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.driver.poll_timeout().is_some_and(|t| t <= now) {
            self.driver.handle_timeout(now);
        }
        if self.ua.poll_timeout().is_some_and(|t| t <= now) {
            self.ua.handle_timeout(now);
        }
        self.pump(now);
    }

    /// Ends every call (the gateway is stopping).
    pub fn shutdown(&mut self, now: Instant) {
        let calls: Vec<CallRef> = self.calls.iter().map(|c| c.line).collect();
        for line in calls {
            self.driver.release(line, Cause::NORMAL, now);
            self.line_released(line, Cause::NORMAL, now);
        }
        self.ua.shutdown(now);
        self.pump(now);
    }

    /// Moves events between the driver and the user agent until both are quiet, then queues
    /// what they send.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(e) = self.driver.poll_event() {
                busy = true;
                self.on_line_event(e, now);
            }
            while let Some(e) = self.ua.poll_event() {
                busy = true;
                self.on_sip_event(e, now);
            }
            if !busy {
                break;
            }
        }
        while let Some((line, frame)) = self.driver.poll_audio() {
            let Some(c) = self.calls.iter_mut().find(|c| c.line == line) else {
                continue;
            };
            let (Some((to, pt)), Some(codec)) = (c.remote, c.codec) else {
                continue;
            };
            c.rtp.packet(pt, codec, &frame, &mut self.buf);
            self.out.push_back(LineTransmit {
                slot: Some(c.slot),
                to,
                bytes: self.buf.clone(),
            });
        }
        while let Some(t) = self.ua.poll_transmit() {
            self.out.push_back(LineTransmit {
                slot: None,
                to: t.to,
                bytes: t.bytes.to_vec(),
            });
        }
    }

    fn free_slot(&mut self) -> Option<usize> {
        let i = self.slots.iter().position(|used| !used)?;
        self.slots[i] = true;
        Some(i)
    }

    fn forget(&mut self, i: usize) -> LineCall {
        let c = self.calls.swap_remove(i);
        if let Some(s) = self.slots.get_mut(c.slot) {
            *s = false;
        }
        c
    }

    /// A new call's SDP session id: one per call, so its 183 and 200 describe one session
    /// (RFC 3264 8).
    fn next_session(&mut self) -> u64 {
        self.session += 1;
        self.session
    }

    fn sdp_for(&self, slot: usize, codec: AudioCodec, pt: u8, id: u64) -> String {
        media::sdp(self.cfg.rtp[slot], codec, pt, id)
    }

    fn on_line_event(&mut self, e: LineEvent, now: Instant) {
        match e {
            LineEvent::Incoming {
                call,
                calling,
                called,
                codec,
                via: _,
            } => self.line_call(call, calling, called, codec, now),
            LineEvent::Progress { call, progress } => self.line_progress(call, progress, now),
            LineEvent::Answered { call, codec } => self.line_answered(call, codec, now),
            LineEvent::Released { call, cause } => self.line_released(call, cause, now),
            LineEvent::Fault(f) => log_fault(self.driver.name(), &f),
        }
    }

    /// A call from the line: an INVITE to the switch, offering the line codec.
    fn line_call(
        &mut self,
        line: CallRef,
        calling: Party,
        called: Party,
        codec: AudioCodec,
        now: Instant,
    ) {
        let Some(slot) = self.free_slot() else {
            self.driver.release(line, Cause::NO_CIRCUIT, now);
            return;
        };
        let id = self.next_session();
        let sdp = self.sdp_for(slot, codec, codec.payload_type(), id);
        let host = self.cfg.sip;
        let from_user = if calling.number.is_empty() {
            "anonymous".to_string()
        } else {
            calling.number.clone()
        };
        // '#' and '*' service codes travel escaped in the user part (RFC 3261 25.1).
        let target = format!("sip:{}@{}", escape_user(&called.number), self.cfg.domain);
        let from = format!("sip:{}@{host}", escape_user(&from_user));
        let mut params = InviteParams::new(&target, &from, &sdp, self.cfg.switch);
        params.from_display = calling.name.clone();
        match self.ua.invite(params, now) {
            Ok(h) => self.calls.push(LineCall {
                line,
                sip: h,
                slot,
                codec: Some(codec),
                remote: None,
                offer: None,
                sdp_id: id,
                rtp: RtpOut::new(slot_ssrc(id, slot)),
                answered: false,
                to_line: false,
            }),
            Err(e) => {
                log::warn!("line {}: cannot place a call: {e}", self.driver.name());
                self.slots[slot] = false;
                self.driver.release(line, Cause::TEMPORARY_FAILURE, now);
            }
        }
    }

    fn line_progress(&mut self, line: CallRef, progress: Progress, now: Instant) {
        let Some(i) = self.calls.iter().position(|c| c.line == line) else {
            return;
        };
        if !self.calls[i].to_line {
            return;
        }
        let h = self.calls[i].sip;
        let _ = match progress {
            Progress::Proceeding => Ok(()),
            Progress::Alerting => self.ua.ringing(h, now),
            // Early media needs the switch's offer to answer: without one it is ringing.
            Progress::InbandInfo if self.calls[i].offer.is_none() => self.ua.ringing(h, now),
            Progress::InbandInfo => {
                // Early media: the ring-back or announcement of the far end flows now.
                let codec = self
                    .driver
                    .codec_of(line)
                    .or(self.calls[i].codec)
                    .unwrap_or(AudioCodec::Pcma);
                match self.answer_sdp(i, codec) {
                    Some(sdp) => self.ua.progress(h, &sdp, now),
                    None => self.ua.ringing(h, now),
                }
            }
        };
    }

    /// Our answer to the switch's offer in `codec`, noting where its RTP goes; with no offer,
    /// our offer (the answer comes in the ACK).
    fn answer_sdp(&mut self, i: usize, codec: AudioCodec) -> Option<String> {
        let (slot, id) = (self.calls[i].slot, self.calls[i].sdp_id);
        let Some(offer) = self.calls[i].offer.clone() else {
            self.calls[i].codec = Some(codec);
            return Some(self.sdp_for(slot, codec, codec.payload_type(), id));
        };
        let (to, pt) = media::remote(offer.as_bytes(), codec)?;
        self.calls[i].codec = Some(codec);
        self.calls[i].remote = Some((to, pt));
        Some(self.sdp_for(slot, codec, pt, id))
    }

    fn line_answered(&mut self, line: CallRef, codec: AudioCodec, now: Instant) {
        let Some(i) = self.calls.iter().position(|c| c.line == line) else {
            return;
        };
        if !self.calls[i].to_line {
            return;
        }
        let h = self.calls[i].sip;
        match self.answer_sdp(i, codec) {
            Some(sdp) => {
                self.calls[i].answered = true;
                if let Err(e) = self.ua.answer(h, &sdp, now) {
                    log::debug!("line {}: answer: {e}", self.driver.name());
                }
            }
            None => {
                // The switch offered nothing the line speaks: it transcodes, so this means a
                // broken offer.
                self.driver.release(line, Cause::BEARER_NOT_AVAILABLE, now);
                let _ = self.ua.reject(
                    h,
                    488,
                    "Not Acceptable Here",
                    Some(Cause::BEARER_NOT_AVAILABLE.0),
                    now,
                );
                self.forget(i);
            }
        }
    }

    fn line_released(&mut self, line: CallRef, cause: Cause, now: Instant) {
        let Some(i) = self.calls.iter().position(|c| c.line == line) else {
            return;
        };
        let c = self.forget(i);
        let q = Some(cause.0);
        let r = if c.to_line && !c.answered {
            let (status, reason) = status_of_q850(cause.0);
            self.ua.reject(c.sip, status, reason, q, now)
        } else {
            self.ua.hangup(c.sip, q, now)
        };
        if let Err(e) = r {
            log::debug!("line {}: ending call: {e}", self.driver.name());
        }
    }

    fn on_sip_event(&mut self, e: Event, now: Instant) {
        match e {
            Event::Incoming {
                call,
                from_user,
                from_display,
                to_user,
                sdp,
                ..
            } => self.switch_call(call, from_user, from_display, to_user, sdp, now),
            Event::Ringing { call, sdp } | Event::Progress { call, sdp, .. } => {
                if let Some(i) = self.calls.iter().position(|c| c.sip == call) {
                    let early = sdp.is_some();
                    self.take_remote(i, sdp.as_deref());
                    let line = self.calls[i].line;
                    if early {
                        self.driver.early_media(line, now);
                    } else {
                        self.driver.alert(line, now);
                    }
                }
            }
            Event::Answered { call, sdp } => {
                if let Some(i) = self.calls.iter().position(|c| c.sip == call) {
                    self.take_remote(i, sdp.as_deref());
                    self.calls[i].answered = true;
                    let line = self.calls[i].line;
                    self.driver.answer(line, now);
                }
            }
            Event::Confirmed { call, sdp } => {
                if let Some(i) = self.calls.iter().position(|c| c.sip == call) {
                    self.take_remote(i, sdp.as_deref());
                }
            }
            Event::RemoteSdp { call, sdp } => {
                // A re-offer (hold, codec change): the line keeps its codec; the switch's
                // media engine transcodes whatever the far side chose.
                if let Some(i) = self.calls.iter().position(|c| c.sip == call) {
                    self.take_remote(i, Some(&sdp));
                }
            }
            Event::Ended { call, ending, q850 } => {
                if let Some(i) = self.calls.iter().position(|c| c.sip == call) {
                    let c = self.forget(i);
                    let cause = q850.map(Cause).unwrap_or_else(|| cause_of(&ending));
                    self.driver.release(c.line, cause, now);
                }
            }
            _ => {}
        }
    }

    /// The switch's SDP for a call the line placed: where to send its RTP.
    fn take_remote(&mut self, i: usize, sdp: Option<&str>) {
        let (Some(sdp), Some(codec)) = (sdp, self.calls[i].codec) else {
            return;
        };
        if let Some(r) = media::remote(sdp.as_bytes(), codec) {
            self.calls[i].remote = Some(r);
        }
    }

    /// A call from the switch to the line.
    fn switch_call(
        &mut self,
        h: CallHandle,
        from_user: Option<String>,
        from_display: Option<String>,
        to_user: Option<String>,
        sdp: Option<String>,
        now: Instant,
    ) {
        // Without an offer (a delayed offer) the line offers its codec in the 200 and takes
        // the switch's answer from the ACK.
        let codecs = sdp
            .as_deref()
            .map(|s| media::codecs(s.as_bytes()))
            .unwrap_or_default();
        let Some(slot) = self.free_slot() else {
            let (status, reason) = status_of_q850(Cause::NO_CIRCUIT.0);
            let _ = self
                .ua
                .reject(h, status, reason, Some(Cause::NO_CIRCUIT.0), now);
            return;
        };
        let setup = Setup {
            calling: Party {
                number: from_user.unwrap_or_default(),
                name: from_display,
            },
            called: Party::number(&to_user.unwrap_or_default()),
            codecs,
        };
        let id = self.next_session();
        match self.driver.setup(setup, now) {
            Ok(line) => self.calls.push(LineCall {
                line,
                sip: h,
                slot,
                codec: None,
                remote: None,
                offer: sdp,
                sdp_id: id,
                rtp: RtpOut::new(slot_ssrc(id, slot)),
                answered: false,
                to_line: true,
            }),
            Err(cause) => {
                self.slots[slot] = false;
                let (status, reason) = status_of_q850(cause.0);
                let _ = self.ua.reject(h, status, reason, Some(cause.0), now);
            }
        }
    }
}

/// Q.850 cause of a SIP call's end that carried no `Reason`.
fn cause_of(ending: &Ending) -> Cause {
    match ending {
        Ending::Refused { status, .. } => Cause(q850_of_status(*status)),
        Ending::Timeout => Cause::RECOVERY_ON_TIMER_EXPIRY,
        Ending::TransportError => Cause::TEMPORARY_FAILURE,
        Ending::Cancelled => Cause::NORMAL,
        _ => Cause::NORMAL,
    }
}

/// A number as a SIP URI user part: `#` escaped.
fn escape_user(number: &str) -> String {
    number.replace('#', "%23")
}

fn slot_ssrc(session: u64, slot: usize) -> u32 {
    (session as u32).wrapping_mul(0x9e37_79b9) ^ (slot as u32).wrapping_mul(0x85eb_ca6b)
}

fn log_fault(name: &str, f: &crate::line::Fault) {
    use crate::line::Fault;
    match f {
        Fault::Layer1Up | Fault::SignallingUp | Fault::UnitUp(_) => {
            log::info!("line {name}: {f:?}")
        }
        _ => log::warn!("line {name}: {f:?}"),
    }
}
