//! Codec negotiation (RFC 3264 sections 6 and 7). The gateway sits between two legs; it relays
//! untouched when both legs can use one codec and transcodes only when they share none. So an
//! offer passed on to the second leg lists the first leg's codecs first (any the second leg
//! picks from those needs no transcoding), then the codecs mgw can transcode to.

use std::net::IpAddr;

use super::description::{Connection, Media, RtpMap, SessionDescription};

/// The codecs mgw relays and transcodes, and RFC 4733 events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecName {
    Pcmu,
    Pcma,
    G722,
    G726_32,
    Opus,
    TelephoneEvent,
}

impl CodecName {
    pub const ALL: [CodecName; 6] = [
        CodecName::Pcmu,
        CodecName::Pcma,
        CodecName::G722,
        CodecName::G726_32,
        CodecName::Opus,
        CodecName::TelephoneEvent,
    ];

    /// The `rtpmap` encoding name (compared case-insensitively on input).
    pub fn encoding(self) -> &'static str {
        match self {
            CodecName::Pcmu => "PCMU",
            CodecName::Pcma => "PCMA",
            CodecName::G722 => "G722",
            CodecName::G726_32 => "G726-32",
            CodecName::Opus => "opus",
            CodecName::TelephoneEvent => "telephone-event",
        }
    }

    /// The static payload type of RFC 3551 table 4, if any.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecName::Pcmu => Some(0),
            CodecName::Pcma => Some(8),
            CodecName::G722 => Some(9),
            _ => None,
        }
    }

    /// The RTP clock rate written in SDP. G.722 samples at 16 kHz but is signalled as 8000
    /// (RFC 3551 section 4.5.2); Opus is always 48000 (RFC 7587).
    pub fn rtp_clock(self) -> u32 {
        match self {
            CodecName::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// Channels written in `rtpmap` (Opus is always signalled as 2, RFC 7587 section 7).
    pub fn rtp_channels(self) -> u8 {
        match self {
            CodecName::Opus => 2,
            _ => 1,
        }
    }

    pub fn from_encoding(encoding: &str) -> Option<CodecName> {
        CodecName::ALL
            .into_iter()
            .find(|c| c.encoding().eq_ignore_ascii_case(encoding))
            // Some DECT equipment names G.726-32 by its ATM packing (RFC 3551 section 4.5.4).
            .or_else(|| {
                encoding
                    .eq_ignore_ascii_case("AAL2-G726-32")
                    .then_some(CodecName::G726_32)
            })
    }

    fn from_static(pt: u8) -> Option<CodecName> {
        CodecName::ALL
            .into_iter()
            .find(|c| c.static_payload_type() == Some(pt))
    }
}

/// A codec as one leg signals it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    pub name: CodecName,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub fmtp: Option<String>,
}

impl Codec {
    /// The codecs of a media section mgw understands, in the section's preference order.
    /// Static payload types need no rtpmap; a dynamic one without rtpmap is skipped.
    pub fn list(media: &Media) -> Vec<Codec> {
        media
            .formats
            .iter()
            .filter_map(|&pt| {
                let (name, clock) = match media.rtpmap(pt) {
                    Some(m) => (CodecName::from_encoding(&m.encoding)?, m.clock_rate),
                    None => {
                        let n = CodecName::from_static(pt)?;
                        (n, n.rtp_clock())
                    }
                };
                Some(Codec {
                    name,
                    payload_type: pt,
                    clock_rate: clock,
                    fmtp: media.fmtp(pt).map(str::to_string),
                })
            })
            .collect()
    }

    fn rtpmap(&self) -> RtpMap {
        RtpMap {
            payload_type: self.payload_type,
            encoding: self.name.encoding().to_string(),
            clock_rate: self.clock_rate,
            channels: self.name.rtp_channels(),
        }
    }
}

/// What mgw offers or accepts on a leg, in preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub codecs: Vec<CodecName>,
    /// Offer and accept RFC 4733 events.
    pub telephone_event: bool,
    pub ptime: u32,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            codecs: vec![
                CodecName::Pcma,
                CodecName::Pcmu,
                CodecName::G722,
                CodecName::Opus,
                CodecName::G726_32,
            ],
            telephone_event: true,
            ptime: 20,
        }
    }
}

/// The outcome of answering one media section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The answer's media section.
    pub media: Media,
    /// The codec both ends will send.
    pub codec: Codec,
    /// RFC 4733 events, if both sides do them.
    pub telephone_event: Option<Codec>,
}

/// Answers media section `index` of `offer` with mgw's address and port: the offerer's first
/// codec mgw can handle (RFC 3264 section 6.1: the answer keeps the offer's payload types).
/// `None` when nothing is common: the stream is then rejected with port 0 (or the call 488).
pub fn answer(
    offer: &SessionDescription,
    index: usize,
    caps: &Capabilities,
    address: IpAddr,
    port: u16,
) -> Option<Negotiated> {
    let m = offer.media.get(index)?;
    if m.kind != "audio" || m.is_disabled() || !m.protocol.starts_with("RTP/AVP") {
        return None;
    }
    let offered = Codec::list(m);
    let codec = offered
        .iter()
        .find(|c| c.name != CodecName::TelephoneEvent && caps.codecs.contains(&c.name))?
        .clone();
    let telephone_event = caps
        .telephone_event
        .then(|| {
            offered
                .iter()
                .find(|c| c.name == CodecName::TelephoneEvent && c.clock_rate == codec.clock_rate)
                .or_else(|| offered.iter().find(|c| c.name == CodecName::TelephoneEvent))
        })
        .flatten()
        .cloned();
    let mut media = Media::new("audio", port, &m.protocol);
    media.connection = Some(Connection { address });
    for c in std::iter::once(&codec).chain(telephone_event.as_ref()) {
        media.formats.push(c.payload_type);
        media.rtpmaps.push(c.rtpmap());
        if let Some(f) = &c.fmtp {
            media.fmtps.push((c.payload_type, f.clone()));
        }
    }
    media.ptime = m.ptime.or(Some(caps.ptime));
    media.direction = Some(offer.media_direction(index).answer());
    Some(Negotiated {
        media,
        codec,
        telephone_event,
    })
}

/// The offer for the second leg of a call whose first leg offered `first`: its codecs first,
/// then every codec mgw can transcode to that it lacks, on dynamic payload types not in use.
pub fn offer_onward(first: &Media, caps: &Capabilities, address: IpAddr, port: u16) -> Media {
    let mut media = Media::new("audio", port, "RTP/AVP");
    media.connection = Some(Connection { address });
    let mut codecs = Codec::list(first);
    let mut next_dynamic = 96u8;
    let mut take_pt = |codecs: &[Codec]| {
        while codecs.iter().any(|c| c.payload_type == next_dynamic) && next_dynamic < 127 {
            next_dynamic += 1;
        }
        let pt = next_dynamic;
        next_dynamic += 1;
        pt
    };
    for &name in &caps.codecs {
        if codecs.iter().any(|c| c.name == name) {
            continue;
        }
        let payload_type = match name.static_payload_type() {
            Some(pt) => pt,
            None => take_pt(&codecs),
        };
        codecs.push(Codec {
            name,
            payload_type,
            clock_rate: name.rtp_clock(),
            fmtp: None,
        });
    }
    if caps.telephone_event && !codecs.iter().any(|c| c.name == CodecName::TelephoneEvent) {
        let payload_type = take_pt(&codecs);
        codecs.push(Codec {
            name: CodecName::TelephoneEvent,
            payload_type,
            clock_rate: 8000,
            fmtp: Some("0-16".into()),
        });
    }
    for c in &codecs {
        media.formats.push(c.payload_type);
        media.rtpmaps.push(c.rtpmap());
        if let Some(f) = &c.fmtp {
            media.fmtps.push((c.payload_type, f.clone()));
        }
    }
    media.ptime = first.ptime.or(Some(caps.ptime));
    media.direction = first.direction;
    media
}

/// Whether two negotiated codecs need transcoding between them.
pub fn needs_transcoding(a: &Codec, b: &Codec) -> bool {
    a.name != b.name || a.clock_rate != b.clock_rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(m_line: &str, attrs: &str) -> SessionDescription {
        SessionDescription::parse(
            format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP {m_line}\r\n{attrs}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    const MGW: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1));

    #[test]
    fn answer_keeps_the_offerers_first_usable_codec_and_its_payload_types() {
        let o = offer(
            "18 111 0 101",
            "a=rtpmap:18 G729/8000\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n\
             a=rtpmap:101 telephone-event/48000\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
        );
        let n = answer(&o, 0, &Capabilities::default(), MGW, 30000).unwrap();
        assert_eq!(
            n.codec.name,
            CodecName::Opus,
            "G.729 is skipped: mgw has no G.729"
        );
        assert_eq!(n.codec.payload_type, 111);
        assert_eq!(
            n.telephone_event.as_ref().map(|t| t.clock_rate),
            Some(48000)
        );
        assert_eq!(n.media.formats, [111, 101]);
        assert_eq!(n.media.fmtp(111), Some("useinbandfec=1"));
        assert_eq!(n.media.direction, Some(super::super::Direction::RecvOnly));
        let text = n.media.rtpmap(111).unwrap();
        assert_eq!((text.encoding.as_str(), text.channels), ("opus", 2));
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_nothing_common_is_none() {
        let o = offer("8 0", "");
        let n = answer(&o, 0, &Capabilities::default(), MGW, 30000).unwrap();
        assert_eq!((n.codec.name, n.codec.payload_type), (CodecName::Pcma, 8));
        assert_eq!(n.telephone_event, None);
        let o = offer("18", "a=rtpmap:18 G729/8000\r\n");
        assert!(answer(&o, 0, &Capabilities::default(), MGW, 30000).is_none());
    }

    #[test]
    fn onward_offer_lists_the_first_legs_codecs_first() {
        let o = offer(
            "0 96",
            "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n",
        );
        let m = offer_onward(&o.media[0], &Capabilities::default(), MGW, 30002);
        let names: Vec<CodecName> = Codec::list(&m).iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                CodecName::Pcmu,
                CodecName::TelephoneEvent,
                CodecName::Pcma,
                CodecName::G722,
                CodecName::Opus,
                CodecName::G726_32
            ]
        );
        let pts: Vec<u8> = m.formats.clone();
        let mut dedup = pts.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(
            dedup.len(),
            pts.len(),
            "no payload type used twice: {pts:?}"
        );
        assert!(!pts.contains(&96) || m.rtpmap(96).unwrap().encoding == "telephone-event");
    }

    #[test]
    fn transcoding_only_when_codecs_differ() {
        let pcmu = |pt| Codec {
            name: CodecName::Pcmu,
            payload_type: pt,
            clock_rate: 8000,
            fmtp: None,
        };
        assert!(!needs_transcoding(&pcmu(0), &pcmu(0)));
        let pcma = Codec {
            name: CodecName::Pcma,
            ..pcmu(8)
        };
        assert!(needs_transcoding(&pcmu(0), &pcma));
    }
}
