//! Bridging two negotiated legs: from what each leg sends (its codec, its RFC 4733 events, its
//! ptime), how each direction is handled. Plain relay whenever the legs share the codec and
//! both or neither do events; G.711 A-law <-> u-law in place; otherwise decode and re-encode
//! (`relay::AudioPlan`), which also turns events into tones and tones into events when only
//! one leg does events.

use crate::relay::{AudioPlan, DirectionPlan, EventFormat, FlowSpec, Transcode};
use crate::sdp::{Codec, CodecName, Media};

/// What one leg sends and receives once negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegMedia {
    pub audio: Codec,
    pub events: Option<Codec>,
    /// Packet duration it asked for (`a=ptime`), else 20 ms.
    pub ptime: u32,
}

/// Codecs mgw can decode and encode.
pub fn transcodable(c: CodecName) -> bool {
    !matches!(c, CodecName::TelephoneEvent)
}

impl LegMedia {
    /// The leg as its answer describes it: the first audio codec and its telephone-event.
    pub fn of_answer(m: &Media) -> Option<LegMedia> {
        let codecs = Codec::list(m);
        let audio = codecs
            .iter()
            .find(|c| c.name != CodecName::TelephoneEvent)?
            .clone();
        let events = events_for(&codecs, &audio);
        Some(LegMedia {
            audio,
            events,
            ptime: m.ptime.unwrap_or(20),
        })
    }

    /// The offerer's side once the answerer chose `answerer`: the same codec if the offer has
    /// it (no transcoding), else the offer's first codec mgw can transcode.
    pub fn for_offerer(offer: &Media, answerer: &LegMedia) -> Option<LegMedia> {
        let codecs = Codec::list(offer);
        let audio = codecs
            .iter()
            .find(|c| c.name == answerer.audio.name && c.clock_rate == answerer.audio.clock_rate)
            .or_else(|| codecs.iter().find(|c| transcodable(c.name)))?
            .clone();
        let events = events_for(&codecs, &audio);
        Some(LegMedia {
            audio,
            events,
            ptime: offer.ptime.unwrap_or(20),
        })
    }

    fn event_format(&self) -> Option<EventFormat> {
        self.events.as_ref().map(|e| EventFormat {
            payload_type: e.payload_type,
            clock_rate: e.clock_rate,
        })
    }
}

/// A telephone-event on the audio codec's clock if listed, else any.
fn events_for(codecs: &[Codec], audio: &Codec) -> Option<Codec> {
    let te = || {
        codecs
            .iter()
            .filter(|c| c.name == CodecName::TelephoneEvent)
    };
    te().find(|c| c.clock_rate == audio.clock_rate)
        .or_else(|| te().next())
        .cloned()
}

/// How packets from leg `from` reach leg `to`.
pub fn direction(from: &LegMedia, to: &LegMedia, opus_complexity: u8) -> DirectionPlan {
    let same_events = match (&from.events, &to.events) {
        (None, None) => true,
        (Some(a), Some(b)) => a.clock_rate == b.clock_rate,
        _ => false,
    };
    let same_clock = from.audio.clock_rate == to.audio.clock_rate;
    let g711 = match (from.audio.name, to.audio.name) {
        (a, b) if a == b && same_clock => Some(Transcode::None),
        (CodecName::Pcmu, CodecName::Pcma) => Some(Transcode::UlawToAlaw),
        (CodecName::Pcma, CodecName::Pcmu) => Some(Transcode::AlawToUlaw),
        _ => None,
    };
    if let (Some(t), true) = (g711, same_events) {
        let mut pairs = vec![(from.audio.payload_type, to.audio.payload_type)];
        if let (Some(a), Some(b)) = (&from.events, &to.events) {
            pairs.push((a.payload_type, b.payload_type));
        }
        return DirectionPlan::Relay(FlowSpec::mapped_or_pass(&pairs, t, to.audio.clock_rate));
    }
    DirectionPlan::Audio(AudioPlan {
        from: from.audio.name,
        in_pt: from.audio.payload_type,
        to: to.audio.name,
        out_pt: to.audio.payload_type,
        ptime_ms: packet_time(to.audio.name, to.ptime),
        events_in: from.event_format(),
        events_out: to.event_format(),
        opus_complexity,
    })
}

/// A ptime the codec can send: Opus frames are 10, 20, 40 or 60 ms; the sample codecs take
/// any multiple of 10 ms up to 120.
pub fn packet_time(codec: CodecName, asked: u32) -> u32 {
    match codec {
        // The longest frame not above what was asked (a=ptime is the receiver's preference).
        CodecName::Opus => match asked {
            0..=19 => 10,
            20..=39 => 20,
            40..=59 => 40,
            _ => 60,
        },
        _ => (asked / 10 * 10).clamp(10, 120),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::SessionDescription;

    fn media(formats: &str, attrs: &str) -> Media {
        let sdp = SessionDescription::parse(
            format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP {formats}\r\n{attrs}"
            )
            .as_bytes(),
        )
        .unwrap();
        sdp.media[0].clone()
    }

    #[test]
    fn shared_codec_is_relayed_and_g711_pairs_are_converted_in_place() {
        let offer = media("0 8 101", "a=rtpmap:101 telephone-event/8000\r\n");
        let b =
            LegMedia::of_answer(&media("8 101", "a=rtpmap:101 telephone-event/8000\r\n")).unwrap();
        let a = LegMedia::for_offerer(&offer, &b).unwrap();
        assert_eq!(
            a.audio.name,
            CodecName::Pcma,
            "the offer has PCMA: no transcoding"
        );
        assert!(matches!(direction(&a, &b, 5), DirectionPlan::Relay(_)));
        let b = LegMedia::of_answer(&media("8", "")).unwrap();
        let a = LegMedia::for_offerer(&media("0", ""), &b).unwrap();
        assert_eq!(
            direction(&a, &b, 5),
            DirectionPlan::Relay(FlowSpec::mapped_or_pass(
                &[(0, 8)],
                Transcode::UlawToAlaw,
                8000
            ))
        );
    }

    #[test]
    fn no_common_codec_or_one_sided_events_decode() {
        let b = LegMedia::of_answer(&media(
            "111 110",
            "a=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\na=ptime:30\r\n",
        ))
        .unwrap();
        let a = LegMedia::for_offerer(&media("0 101", "a=rtpmap:101 telephone-event/8000\r\n"), &b)
            .unwrap();
        let DirectionPlan::Audio(p) = direction(&a, &b, 5) else {
            panic!("PCMU -> Opus decodes");
        };
        assert_eq!((p.in_pt, p.out_pt, p.ptime_ms), (0, 111, 20));
        assert_eq!(p.events_out.map(|e| e.clock_rate), Some(48000));
        // PCMU both ways, but only one leg does events: tones must be made or found.
        let b = LegMedia::of_answer(&media("0", "")).unwrap();
        let a = LegMedia::for_offerer(&media("0 101", "a=rtpmap:101 telephone-event/8000\r\n"), &b)
            .unwrap();
        assert!(matches!(direction(&a, &b, 5), DirectionPlan::Audio(_)));
        assert!(matches!(direction(&b, &a, 5), DirectionPlan::Audio(_)));
    }

    #[test]
    fn packet_times() {
        assert_eq!(packet_time(CodecName::Opus, 30), 20);
        assert_eq!(packet_time(CodecName::Opus, 60), 60);
        assert_eq!(packet_time(CodecName::Opus, 20), 20);
        assert_eq!(packet_time(CodecName::Pcma, 30), 30);
        assert_eq!(packet_time(CodecName::G722, 5), 10);
        assert_eq!(packet_time(CodecName::Pcmu, 500), 120);
    }
}
