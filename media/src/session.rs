//! Media anchoring of calls, the control surface both the B2BUA (in process) and rtpengine's ng
//! protocol (`ng.rs`) use: `offer` takes one side's SDP and returns the SDP for the other side
//! with mgw's address and ports (and any codecs mgw adds by transcoding); `answer` takes the
//! answer, decides per direction between plain relay and transcoding (`bridge.rs`), and returns
//! the answer for the offerer; `delete` and `query` end and inspect. Re-offers from either side
//! keep the call's ports and outgoing streams.
//!
//! Sans-IO: every call takes the worker's relay and port pool and an explicit `now`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bridge::{direction, transcodable, LegMedia};
use crate::relay::{
    DirectionPlan, FlowSpec, LegSpec, PortPool, Relay, SessionId, SessionStats, Side,
};
use crate::sdp::{Codec, CodecName, Connection, Media, RtpMap, SdpError, SessionDescription};
use crate::transcode::TranscodeError;

/// What an offer or answer asks beyond the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaOptions {
    /// Codecs to add to the SDP passed on, which mgw transcodes to if the answerer picks them.
    pub transcode: Vec<CodecName>,
    /// Codecs to remove from the SDP passed on; `strip_all` removes every one not added by
    /// `transcode`. Stripped codecs are not used on the offerer's side either.
    pub strip: Vec<CodecName>,
    pub strip_all: bool,
    /// Codecs hidden from the other side but still used towards the offerer (mgw transcodes).
    pub mask: Vec<CodecName>,
    /// Media comes from the address in the SDP: do not latch onto another (no NAT).
    pub trust_address: bool,
    /// Write mgw's address into the origin (`o=`) line as well.
    pub replace_origin: bool,
    /// Remove ICE attributes (mgw is not an ICE agent).
    pub remove_ice: bool,
}

impl MediaOptions {
    fn changes_codecs(&self) -> bool {
        !self.transcode.is_empty()
            || self.strip_all
            || !self.strip.is_empty()
            || !self.mask.is_empty()
    }
}

#[derive(Debug)]
pub enum SessionError {
    Sdp(SdpError),
    /// The SDP has no audio stream mgw can anchor.
    NoAudio,
    UnknownCall,
    /// An offer from a tag that is neither side of the call.
    UnknownTag,
    /// `media.rtp_ports` is exhausted.
    NoPorts,
    /// The answer picked nothing mgw can relay or transcode towards the offerer.
    NoCommonCodec,
    Transcode(TranscodeError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Sdp(e) => write!(f, "cannot parse the SDP: {e}"),
            SessionError::NoAudio => write!(f, "the SDP has no audio stream (m=audio with a port)"),
            SessionError::UnknownCall => write!(f, "Unknown call-id"),
            SessionError::UnknownTag => write!(f, "offer from an unknown tag of an existing call"),
            SessionError::NoPorts => write!(
                f,
                "no free RTP ports in media.rtp_ports: widen the range or end calls"
            ),
            SessionError::NoCommonCodec => write!(
                f,
                "no codec of the answer can be relayed or transcoded to one of the offer's"
            ),
            SessionError::Transcode(e) => write!(f, "cannot set up transcoding: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// One anchored call.
#[derive(Debug)]
struct Call {
    /// Tags of the offerer of the first offer (side A) and of the answerer (side B).
    tags: [Option<String>; 2],
    session: SessionId,
    /// mgw's RTP ports towards A and towards B.
    ports: [u16; 2],
    created: Instant,
    /// The current negotiation: who offered, its audio section, its options.
    offerer: Side,
    offer: Option<Media>,
    options: MediaOptions,
    /// What each side sends, once answered.
    legs: [Option<LegMedia>; 2],
}

/// What [`Sessions::query`] reports.
#[derive(Clone, Debug)]
pub struct CallInfo {
    pub age: Duration,
    pub stats: SessionStats,
    /// Codec sent by A and by B (once answered), and whether each direction transcodes.
    pub codecs: [Option<CodecName>; 2],
    pub transcoding: bool,
}

pub struct Sessions {
    /// The address written into rewritten SDP.
    advertised: IpAddr,
    opus_complexity: u8,
    calls: HashMap<String, Call>,
}

fn side_index(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Sessions {
    pub fn new(advertised: IpAddr, opus_complexity: u8) -> Sessions {
        Sessions {
            advertised,
            opus_complexity,
            calls: HashMap::new(),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// The call-id of the call whose relay session is `session`.
    pub fn call_of(&self, session: SessionId) -> Option<&str> {
        self.calls
            .iter()
            .find(|(_, c)| c.session == session)
            .map(|(id, _)| id.as_str())
    }

    /// An offer from the party tagged `from_tag`: the first one creates the call. Returns the
    /// SDP to send to the other party.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        sdp: &str,
        options: &MediaOptions,
        relay: &mut Relay,
        ports: &mut PortPool,
        now: Instant,
    ) -> Result<String, SessionError> {
        let sdp = SessionDescription::parse(sdp.as_bytes()).map_err(SessionError::Sdp)?;
        let (index, remote) = remote_of(&sdp, options).ok_or(SessionError::NoAudio)?;
        let offered = sdp.media[index].clone();
        let (offerer, port) = match self.calls.get_mut(call_id) {
            Some(c) => {
                let side = if c.tags[0].as_deref() == Some(from_tag) {
                    Side::A
                } else if c.tags[1].as_deref() == Some(from_tag) || c.tags[1].is_none() {
                    // A re-INVITE by the callee, or a fork answering before its tag was known.
                    c.tags[1] = Some(from_tag.to_string());
                    Side::B
                } else {
                    return Err(SessionError::UnknownTag);
                };
                let i = side_index(side);
                relay.update_leg(c.session, side, remote.leg(c.ports[i]));
                (side, c.ports[1 - i])
            }
            None => {
                let a = ports.allocate().ok_or(SessionError::NoPorts)?;
                let Some(b) = ports.allocate() else {
                    ports.free(a);
                    return Err(SessionError::NoPorts);
                };
                let b_leg = LegSpec {
                    local_rtp: b,
                    remote: None,
                    remote_rtcp: None,
                    allow_nat: true,
                };
                let session = relay.create(remote.leg(a), b_leg, now);
                self.calls.insert(
                    call_id.to_string(),
                    Call {
                        tags: [Some(from_tag.to_string()), None],
                        session,
                        ports: [a, b],
                        created: now,
                        offerer: Side::A,
                        offer: None,
                        options: MediaOptions::default(),
                        legs: [None, None],
                    },
                );
                (Side::A, b)
            }
        };
        if let Some(c) = self.calls.get_mut(call_id) {
            c.offerer = offerer;
            c.offer = Some(offered.clone());
            c.options = options.clone();
        }
        // Without codec options the SDP's codecs pass untouched, unknown ones included, as
        // rtpengine does by default.
        let onward = options
            .changes_codecs()
            .then(|| onward_codecs(&offered, options));
        Ok(self.rewrite(sdp, index, port, options, onward.as_deref()))
    }

    /// The answer from the other party. Returns the SDP for the offerer.
    pub fn answer(
        &mut self,
        call_id: &str,
        to_tag: Option<&str>,
        sdp: &str,
        options: &MediaOptions,
        relay: &mut Relay,
        now: Instant,
    ) -> Result<String, SessionError> {
        let complexity = self.opus_complexity;
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or(SessionError::UnknownCall)?;
        let sdp = SessionDescription::parse(sdp.as_bytes()).map_err(SessionError::Sdp)?;
        let (index, remote) = remote_of(&sdp, options).ok_or(SessionError::NoAudio)?;
        let answerer = call.offerer.other();
        let (o, a) = (side_index(call.offerer), side_index(answerer));
        if let (Some(t), Side::B) = (to_tag, answerer) {
            call.tags[1] = Some(t.to_string());
        }
        relay.update_leg(call.session, answerer, remote.leg(call.ports[a]));
        let answer_media = &sdp.media[index];
        let first_known = answer_media.formats.first().is_some_and(|&pt| {
            Codec::list(answer_media)
                .iter()
                .any(|c| c.payload_type == pt)
        });
        if !first_known {
            // A codec mgw does not know (G.729, say) that both sides have: relay it as is.
            for side in [Side::A, Side::B] {
                relay
                    .set_direction(
                        call.session,
                        side,
                        DirectionPlan::Relay(FlowSpec::passthrough(8000)),
                        now,
                    )
                    .map_err(SessionError::Transcode)?;
            }
            let port = call.ports[o];
            return Ok(self.rewrite(sdp, index, port, options, None));
        }
        let answering = LegMedia::of_answer(answer_media).ok_or(SessionError::NoCommonCodec)?;
        let offer = call.offer.clone().ok_or(SessionError::UnknownCall)?;
        let usable = usable_offer(&offer, &call.options);
        let offering =
            LegMedia::for_offerer(&usable, &answering).ok_or(SessionError::NoCommonCodec)?;
        for (from, to, side) in [
            (&offering, &answering, call.offerer),
            (&answering, &offering, answerer),
        ] {
            relay
                .set_direction(call.session, side, direction(from, to, complexity), now)
                .map_err(SessionError::Transcode)?;
        }
        let port = call.ports[o];
        // Towards the offerer: its own codec (and events) when mgw transcodes.
        let towards = (offering.audio != answering.audio || offering.events != answering.events)
            .then(|| {
                std::iter::once(offering.audio.clone())
                    .chain(offering.events.clone())
                    .collect::<Vec<_>>()
            });
        call.legs[o] = Some(offering);
        call.legs[a] = Some(answering);
        Ok(self.rewrite(sdp, index, port, options, towards.as_deref()))
    }

    pub fn delete(
        &mut self,
        call_id: &str,
        relay: &mut Relay,
        ports: &mut PortPool,
    ) -> Result<SessionStats, SessionError> {
        let call = self
            .calls
            .remove(call_id)
            .ok_or(SessionError::UnknownCall)?;
        let stats = relay.delete(call.session);
        for p in call.ports {
            ports.free(p);
        }
        stats.ok_or(SessionError::UnknownCall)
    }

    /// Ends the call of a session the relay found silent; returns its call-id.
    pub fn expire(
        &mut self,
        session: SessionId,
        relay: &mut Relay,
        ports: &mut PortPool,
    ) -> Option<String> {
        let call_id = self.call_of(session)?.to_string();
        self.delete(&call_id, relay, ports).ok()?;
        Some(call_id)
    }

    pub fn query(
        &self,
        call_id: &str,
        relay: &Relay,
        now: Instant,
    ) -> Result<CallInfo, SessionError> {
        let call = self.calls.get(call_id).ok_or(SessionError::UnknownCall)?;
        let stats = relay.query(call.session).ok_or(SessionError::UnknownCall)?;
        Ok(CallInfo {
            age: now.saturating_duration_since(call.created),
            stats,
            codecs: [
                call.legs[0].as_ref().map(|l| l.audio.name),
                call.legs[1].as_ref().map(|l| l.audio.name),
            ],
            transcoding: relay.decodes(call.session, Side::A)
                || relay.decodes(call.session, Side::B),
        })
    }

    /// The SDP as the other side must see it: mgw's address and port for the anchored audio
    /// stream, RTCP on the next port, and `codecs` in place of the stream's own if given.
    fn rewrite(
        &self,
        mut sdp: SessionDescription,
        index: usize,
        port: u16,
        options: &MediaOptions,
        codecs: Option<&[Codec]>,
    ) -> String {
        let conn = Connection {
            address: self.advertised,
        };
        if sdp.connection.is_some() {
            sdp.connection = Some(conn);
        }
        if options.replace_origin {
            sdp.origin.address = self.advertised;
        }
        let session_level = sdp.connection.is_some();
        if let Some(m) = sdp.media.get_mut(index) {
            m.port = port;
            if m.connection.is_some() || !session_level {
                m.connection = Some(conn);
            }
            m.rtcp = Some((port.wrapping_add(1), None));
            m.rtcp_mux = false;
            if options.remove_ice {
                m.other.retain(|a| {
                    !(a.starts_with("candidate")
                        || a.starts_with("ice-")
                        || a.starts_with("end-of-candidates")
                        || a.starts_with("remote-candidates"))
                });
            }
            if let Some(codecs) = codecs {
                set_codecs(m, codecs);
            }
        }
        sdp.origin.session_version = sdp.origin.session_version.wrapping_add(1);
        sdp.to_string()
    }
}

/// Replaces a media section's formats with `codecs`.
fn set_codecs(m: &mut Media, codecs: &[Codec]) {
    m.formats = codecs.iter().map(|c| c.payload_type).collect();
    m.rtpmaps = codecs.iter().map(rtpmap_of).collect();
    m.fmtps = codecs
        .iter()
        .filter_map(|c| c.fmtp.clone().map(|f| (c.payload_type, f)))
        .collect();
}

fn rtpmap_of(c: &Codec) -> RtpMap {
    RtpMap {
        payload_type: c.payload_type,
        encoding: c.name.encoding().to_string(),
        clock_rate: c.clock_rate,
        channels: c.name.rtp_channels(),
    }
}

/// The offer without the codecs stripped (what the offerer may use).
fn usable_offer(offer: &Media, options: &MediaOptions) -> Media {
    let mut m = offer.clone();
    let keep: Vec<Codec> = Codec::list(offer)
        .into_iter()
        .filter(|c| {
            c.name == CodecName::TelephoneEvent
                || !(options.strip_all || options.strip.contains(&c.name))
        })
        .collect();
    if !keep.is_empty() {
        set_codecs(&mut m, &keep);
    }
    m
}

/// The codecs offered onward: the offer's, less those stripped or masked, plus those to
/// transcode to (static payload type if it has one, else a free dynamic one). Formats mgw does
/// not know pass untouched unless everything is stripped.
fn onward_codecs(offer: &Media, options: &MediaOptions) -> Vec<Codec> {
    let mut out: Vec<Codec> = Codec::list(offer)
        .into_iter()
        .filter(|c| {
            c.name == CodecName::TelephoneEvent
                || !(options.strip_all
                    || options.strip.contains(&c.name)
                    || options.mask.contains(&c.name))
        })
        .collect();
    let mut used: Vec<u8> = offer.formats.clone();
    for &name in &options.transcode {
        if !transcodable(name) || out.iter().any(|c| c.name == name) {
            continue;
        }
        let pt = match name.static_payload_type() {
            Some(pt) if !used.contains(&pt) => pt,
            _ => match (96..128).find(|p| !used.contains(p)) {
                Some(p) => p,
                None => continue,
            },
        };
        used.push(pt);
        out.push(Codec {
            name,
            payload_type: pt,
            clock_rate: name.rtp_clock(),
            fmtp: (name == CodecName::Opus).then(|| "useinbandfec=1".to_string()),
        });
    }
    // Telephone-event last, as offers usually list it.
    out.sort_by_key(|c| c.name == CodecName::TelephoneEvent);
    if out.iter().all(|c| c.name == CodecName::TelephoneEvent) {
        return Codec::list(offer);
    }
    out
}

/// Where a side receives, from its SDP.
struct Remote {
    rtp: SocketAddr,
    rtcp: SocketAddr,
    allow_nat: bool,
}

impl Remote {
    fn leg(&self, local_rtp: u16) -> LegSpec {
        LegSpec {
            local_rtp,
            remote: Some(self.rtp),
            remote_rtcp: Some(self.rtcp),
            allow_nat: self.allow_nat,
        }
    }
}

fn remote_of(sdp: &SessionDescription, options: &MediaOptions) -> Option<(usize, Remote)> {
    let i = sdp
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)?;
    let m = &sdp.media[i];
    let ip = sdp.media_address(i)?;
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = match m.rtcp {
        Some((port, addr)) => SocketAddr::new(addr.unwrap_or(ip), port),
        None if m.rtcp_mux => rtp,
        None => SocketAddr::new(ip, m.port.wrapping_add(1)),
    };
    Some((
        i,
        Remote {
            rtp,
            rtcp,
            allow_nat: !options.trust_address,
        },
    ))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
