//! The RTP side of a line call: the line's 20 ms frames become RTP packets towards the media
//! engine and back, and the SDP that announces them. The line codec is the only one offered:
//! the switch's media engine transcodes to whatever the SIP side speaks, as a TDM card's DSP
//! would.

use std::net::{IpAddr, SocketAddr};

use mgw_media::rtp::header::{write_header, RtpPacket};
use mgw_media::sdp::SessionDescription;

use crate::line::AudioCodec;

const RTP_HEADER: usize = 12;

/// SDP offering (or answering with) `codec` as payload type `pt` at `addr`. An answer uses
/// the offer's number for the codec (RFC 3264 6.1); an offer uses the codec's own.
pub fn sdp(addr: SocketAddr, codec: AudioCodec, pt: u8, session: u64) -> String {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let ip = addr.ip();
    format!(
        "v=0\r\no=mgw-line {session} {session} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\nm=audio {} RTP/AVP {pt}\r\na=rtpmap:{pt} {}/{}\r\na=ptime:20\r\na=sendrecv\r\n",
        addr.port(),
        codec.rtp_name(),
        codec.clock_rate()
    )
}

/// Where the far side of an SDP wants RTP, and the payload type it gave `codec` (its own
/// number for a dynamic codec), if it listed it.
pub fn remote(body: &[u8], codec: AudioCodec) -> Option<(SocketAddr, u8)> {
    let d = SessionDescription::parse(body).ok()?;
    let (i, m) = d
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.kind == "audio" && m.port != 0)?;
    let ip: IpAddr = d.media_address(i)?;
    let pt = m.formats.iter().copied().find(|&pt| {
        m.rtpmap(pt)
            .map_or(pt == codec.payload_type() && pt < 96, |r| {
                r.encoding.eq_ignore_ascii_case(codec.rtp_name())
            })
    })?;
    Some((SocketAddr::new(ip, m.port), pt))
}

/// The sending half of one call's RTP stream: sequence and timestamp continue across the call.
#[derive(Debug)]
pub struct RtpOut {
    ssrc: u32,
    seq: u16,
    ts: u32,
    first: bool,
}

impl RtpOut {
    pub fn new(ssrc: u32) -> RtpOut {
        RtpOut {
            ssrc,
            seq: (ssrc >> 16) as u16,
            ts: ssrc.rotate_left(7),
            first: true,
        }
    }

    /// One frame as an RTP packet with payload type `pt`.
    pub fn packet(&mut self, pt: u8, codec: AudioCodec, frame: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(RTP_HEADER + frame.len(), 0);
        write_header(out, self.first, pt, self.seq, self.ts, self.ssrc);
        out[RTP_HEADER..].copy_from_slice(frame);
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        // 20 ms of the codec's RTP clock (8 kHz for all four, G.722 included).
        self.ts = self
            .ts
            .wrapping_add(codec.clock_rate() / 1000 * crate::line::FRAME_MS as u32);
    }
}

/// The payload of an RTP packet of payload type `pt`, `None` for anything else (RTCP, DTMF
/// events, garbage).
pub fn payload(packet: &mut [u8], pt: u8) -> Option<&[u8]> {
    let p = RtpPacket::parse(packet).ok()?;
    if p.payload_type() != pt {
        return None;
    }
    let off = p.payload_offset();
    let len = p.payload().len();
    packet.get(off..off + len)
}

/// The line codecs an SDP lists, in its order of preference.
pub fn codecs(body: &[u8]) -> Vec<AudioCodec> {
    [
        AudioCodec::Pcma,
        AudioCodec::Pcmu,
        AudioCodec::G722,
        AudioCodec::G726_32,
    ]
    .into_iter()
    .filter_map(|c| remote(body, c).map(|(_, pt)| (c, pt)))
    .map(|(c, pt)| (position(body, pt), c))
    .collect::<std::collections::BTreeMap<_, _>>()
    .into_values()
    .collect()
}

fn position(body: &[u8], pt: u8) -> usize {
    SessionDescription::parse(body)
        .ok()
        .and_then(|d| {
            d.media
                .iter()
                .find(|m| m.kind == "audio" && m.port != 0)
                .and_then(|m| m.formats.iter().position(|&f| f == pt))
        })
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_round_trips_through_the_parser() {
        let a: SocketAddr = "127.0.0.1:40000".parse().expect("literal");
        for c in [
            AudioCodec::Pcma,
            AudioCodec::Pcmu,
            AudioCodec::G726_32,
            AudioCodec::G722,
        ] {
            let s = sdp(a, c, c.payload_type(), 7);
            assert_eq!(remote(s.as_bytes(), c), Some((a, c.payload_type())), "{s}");
        }
        let other = sdp(a, AudioCodec::Pcmu, 0, 1);
        assert_eq!(remote(other.as_bytes(), AudioCodec::Pcma), None);
        assert_eq!(remote(b"garbage", AudioCodec::Pcma), None);
    }

    #[test]
    fn packets_carry_the_frame_with_running_sequence_and_timestamp() {
        let mut out = RtpOut::new(0x1234_5678);
        let mut buf = Vec::new();
        out.packet(8, AudioCodec::Pcma, &[0xd5; 160], &mut buf);
        let mut first = buf.clone();
        out.packet(8, AudioCodec::Pcma, &[0x55; 160], &mut buf);
        let p1 = RtpPacket::parse(&mut first).expect("valid");
        let (s1, t1) = (p1.sequence(), p1.timestamp());
        assert!(p1.marker());
        let p2 = RtpPacket::parse(&mut buf).expect("valid");
        assert_eq!(p2.sequence(), s1.wrapping_add(1));
        assert_eq!(p2.timestamp(), t1.wrapping_add(160));
        assert_eq!(payload(&mut buf, 8), Some(&[0x55; 160][..]));
        assert_eq!(payload(&mut buf, 0), None);
        assert_eq!(payload(&mut [1, 2, 3], 8), None);
    }
}
