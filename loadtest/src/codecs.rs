//! What the generator's endpoints send and how they name it in SDP: G.711 u-law or A-law, or
//! Opus. Payloads are a 1 kHz tone encoded once at start-up, so a transcoding relay works on
//! real audio rather than on the generator's bookkeeping bytes.

use clap::ValueEnum;
use mgw_media::codec::{g711, opus};

/// A-law and u-law are 8 kHz, one byte per sample.
const G711_RATE: u32 = 8_000;
/// The Opus encoder runs at its full rate; the RTP clock is 48 kHz whatever it runs at.
const OPUS_RATE: u32 = 48_000;
/// The payload type the offerer gives Opus (dynamic, RFC 3551 section 3).
const OPUS_OFFER_PT: u8 = 96;
/// One second of frames: the encoder's state differs frame to frame even for a steady tone,
/// so cycling through 50 gives the decoder the variety of a real stream.
const OPUS_FRAMES: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    /// The rtpmap encoding name (and what rtpengine's `transcode` list takes).
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    /// The payload type this side uses when it is the one writing the offer.
    pub fn offer_pt(self) -> u8 {
        self.static_pt().unwrap_or(OPUS_OFFER_PT)
    }

    pub fn rtp_clock(self) -> u32 {
        match self {
            Codec::Opus => OPUS_RATE,
            _ => G711_RATE,
        }
    }

    /// `m=` format list, rtpmap and fmtp lines for this codec at `pt`.
    pub fn sdp_media(self, port: u16, pt: u8, ptime_ms: u32) -> String {
        let map = match self {
            Codec::Opus => {
                format!("a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} useinbandfec=0\r\n")
            }
            _ => format!("a=rtpmap:{pt} {}/8000\r\n", self.encoding()),
        };
        format!("m=audio {port} RTP/AVP {pt}\r\n{map}a=ptime:{ptime_ms}\r\na=sendrecv\r\n")
    }

    /// Encoded frames of a 1 kHz tone at `ptime_ms` each, to be sent in turn.
    pub fn tone_frames(self, ptime_ms: u32) -> Result<Vec<Vec<u8>>, String> {
        match self {
            Codec::Pcmu | Codec::Pcma => {
                let pcm = tone((G711_RATE * ptime_ms / 1000) as usize, G711_RATE);
                let mut out = vec![0u8; pcm.len()];
                if self == Codec::Pcmu {
                    g711::encode_ulaw(&pcm, &mut out);
                } else {
                    g711::encode_alaw(&pcm, &mut out);
                }
                // 1 kHz repeats every 8 samples at 8 kHz: every frame is the same.
                Ok(vec![out])
            }
            Codec::Opus => {
                let mut cfg = opus::OpusConfig::new(OPUS_RATE);
                cfg.ptime_ms = ptime_ms;
                let mut enc = opus::OpusEncoder::new(cfg)
                    .map_err(|e| format!("opus encoder at {ptime_ms} ms: {e}"))?;
                let pcm = tone(enc.frame_samples() * OPUS_FRAMES, OPUS_RATE);
                let mut buf = vec![0u8; opus::MAX_PACKET_BYTES];
                pcm.chunks_exact(enc.frame_samples())
                    .map(|frame| {
                        let n = enc
                            .encode(frame, &mut buf)
                            .map_err(|e| format!("opus encode: {e}"))?;
                        Ok(buf[..n].to_vec())
                    })
                    .collect()
            }
        }
    }
}

/// A 1 kHz sine at about -12 dBFS.
fn tone(samples: usize, rate: u32) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let phase = std::f64::consts::TAU * 1000.0 * i as f64 / f64::from(rate);
            (8000.0 * phase.sin()) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_expected_sizes() {
        assert_eq!(Codec::Pcmu.tone_frames(20).expect("pcmu")[0].len(), 160);
        assert_eq!(Codec::Pcma.tone_frames(20).expect("pcma")[0].len(), 160);
        let opus = Codec::Opus.tone_frames(20).expect("opus");
        assert_eq!(opus.len(), OPUS_FRAMES);
        assert!(opus.iter().all(|f| (8..400).contains(&f.len())));
    }

    #[test]
    fn sdp_lines() {
        assert_eq!(
            Codec::Opus.sdp_media(4000, 111, 20),
            "m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 useinbandfec=0\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        assert!(Codec::Pcma
            .sdp_media(4000, 8, 20)
            .contains("a=rtpmap:8 PCMA/8000\r\n"));
    }
}
