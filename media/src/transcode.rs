//! Transcoding between legs that share no codec: decode, resample, re-frame to the outgoing
//! ptime, encode. One [`Transcoder`] per direction; its buffers are allocated once, when the
//! call is set up, so a running transcoding path holds a fixed amount of state (G.711, G.722,
//! G.726: a few KiB; Opus adds the codec's own state, see `codec/opus.rs`).

use std::fmt;

use crate::codec::g711;
use crate::codec::g722::{G722Decoder, G722Encoder};
use crate::codec::g726::{G726Decoder, G726Encoder};
use crate::codec::opus::{OpusConfig, OpusDecoder, OpusEncoder, OpusError};
use crate::codec::resample::{ResampleError, Resampler};
use crate::sdp::CodecName;

#[derive(Debug)]
pub enum TranscodeError {
    /// A codec mgw does not transcode (telephone-event is not audio).
    Unsupported(CodecName),
    Opus(OpusError),
    Resample(ResampleError),
    /// A payload longer than a frame buffer holds (over 120 ms).
    TooLong(usize),
}

impl fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranscodeError::Unsupported(c) => write!(f, "{} cannot be transcoded", c.encoding()),
            TranscodeError::Opus(e) => write!(f, "opus: {e}"),
            TranscodeError::Resample(e) => write!(f, "resampling: {e}"),
            TranscodeError::TooLong(n) => write!(f, "payload of {n} bytes is longer than 120 ms"),
        }
    }
}

impl std::error::Error for TranscodeError {}

impl From<OpusError> for TranscodeError {
    fn from(e: OpusError) -> Self {
        TranscodeError::Opus(e)
    }
}

impl From<ResampleError> for TranscodeError {
    fn from(e: ResampleError) -> Self {
        TranscodeError::Resample(e)
    }
}

/// The sample rate a codec's audio has (not its RTP clock: G.722 is 16 kHz on an 8 kHz clock).
pub fn audio_rate(codec: CodecName) -> u32 {
    match codec {
        CodecName::G722 => 16_000,
        CodecName::Opus => 48_000,
        _ => 8_000,
    }
}

/// Bitrate of the Opus mgw encodes, whatever the audio's rate.
pub const TRANSCODED_OPUS_BITRATE: u32 = 32_000;

/// Most samples one payload can decode to: 120 ms at 48 kHz (the longest Opus packet).
pub const MAX_FRAME: usize = 5760;

/// Any of mgw's decoders (a transcoding path's first half; also what tests and load
/// generators use to check and make audio).
pub enum Decoder {
    Pcmu,
    Pcma,
    G722(Box<G722Decoder>),
    G726(Box<G726Decoder>),
    Opus(Box<OpusDecoder>),
}

/// Any of mgw's encoders.
pub enum Encoder {
    Pcmu,
    Pcma,
    G722(Box<G722Encoder>),
    G726(Box<G726Encoder>),
    Opus(Box<OpusEncoder>),
}

impl Decoder {
    /// A decoder producing audio at the codec's own rate ([`audio_rate`]).
    pub fn new(codec: CodecName) -> Result<Decoder, TranscodeError> {
        Decoder::at_rate(codec, audio_rate(codec))
    }

    /// Opus decodes at any of 8, 16 or 48 kHz; the other codecs only at their own rate, and
    /// `rate` is ignored for them.
    pub fn at_rate(codec: CodecName, rate: u32) -> Result<Decoder, TranscodeError> {
        Ok(match codec {
            CodecName::Pcmu => Decoder::Pcmu,
            CodecName::Pcma => Decoder::Pcma,
            CodecName::G722 => Decoder::G722(Box::default()),
            CodecName::G726_32 => Decoder::G726(Box::default()),
            CodecName::Opus => Decoder::Opus(Box::new(OpusDecoder::new(rate)?)),
            c => return Err(TranscodeError::Unsupported(c)),
        })
    }

    /// Decodes `payload` (`None`: a lost packet, concealed where the codec can).
    pub fn decode(
        &mut self,
        payload: Option<&[u8]>,
        out: &mut [i16],
    ) -> Result<usize, TranscodeError> {
        let Some(p) = payload else {
            return match self {
                Decoder::Opus(d) => Ok(d.decode(None, out)?),
                _ => Ok(0),
            };
        };
        let need = match self {
            Decoder::G722(_) | Decoder::G726(_) => p.len() * 2,
            Decoder::Opus(_) => 0,
            _ => p.len(),
        };
        if need > out.len() {
            return Err(TranscodeError::TooLong(p.len()));
        }
        Ok(match self {
            Decoder::Pcmu => {
                g711::decode_ulaw(p, out);
                p.len()
            }
            Decoder::Pcma => {
                g711::decode_alaw(p, out);
                p.len()
            }
            Decoder::G722(d) => d.decode(p, out),
            Decoder::G726(d) => d.decode(p, out),
            Decoder::Opus(d) => d.decode(Some(p), out)?,
        })
    }
}

impl Encoder {
    /// `ptime_ms` matters to Opus only (its frame size); the others encode what they get.
    pub fn new(codec: CodecName, ptime_ms: u32, complexity: u8) -> Result<Encoder, TranscodeError> {
        Encoder::at_rate(codec, audio_rate(codec), ptime_ms, complexity)
    }

    /// Opus encodes audio of 8, 16 or 48 kHz (its RTP clock stays 48 kHz); the other codecs
    /// take their own rate only, and `rate` is ignored for them.
    pub fn at_rate(
        codec: CodecName,
        rate: u32,
        ptime_ms: u32,
        complexity: u8,
    ) -> Result<Encoder, TranscodeError> {
        Ok(match codec {
            CodecName::Pcmu => Encoder::Pcmu,
            CodecName::Pcma => Encoder::Pcma,
            CodecName::G722 => Encoder::G722(Box::default()),
            CodecName::G726_32 => Encoder::G726(Box::default()),
            CodecName::Opus => {
                let mut cfg = OpusConfig::new(rate);
                cfg.ptime_ms = ptime_ms;
                cfg.complexity = complexity;
                // 32 kbit/s at every rate: RFC 7587's lower narrowband figures are for
                // endpoints short of bandwidth; a gateway re-encoding G.711 wants fidelity.
                // Narrowband at 12 kbit/s gives a 1 kHz tone 19 dB SNR, at 32 kbit/s 35 dB.
                cfg.bitrate = TRANSCODED_OPUS_BITRATE;
                Encoder::Opus(Box::new(OpusEncoder::new(cfg)?))
            }
            c => return Err(TranscodeError::Unsupported(c)),
        })
    }

    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, TranscodeError> {
        Ok(match self {
            Encoder::Pcmu => {
                g711::encode_ulaw(pcm, out);
                pcm.len().min(out.len())
            }
            Encoder::Pcma => {
                g711::encode_alaw(pcm, out);
                pcm.len().min(out.len())
            }
            Encoder::G722(e) => e.encode(pcm, out),
            Encoder::G726(e) => e.encode(pcm, out),
            Encoder::Opus(e) => e.encode(pcm, out)?,
        })
    }
}

/// One direction's transcoding path.
pub struct Transcoder {
    decoder: Decoder,
    encoder: Encoder,
    to: CodecName,
    /// Audio rates of the decoder's output and the encoder's input.
    in_rate: u32,
    out_rate: u32,
    resampler: Option<Resampler>,
    decoded: Box<[i16]>,
    resampled: Box<[i16]>,
    /// Audio at the outgoing rate not yet encoded (re-framing to the outgoing ptime).
    pending: Box<[i16]>,
    pending_len: usize,
    /// Samples the last feed decoded, and the last real packet's (silence for a lost one).
    decoded_len: usize,
    last_decoded: usize,
    /// Samples per outgoing packet, at the outgoing audio rate.
    frame: usize,
    encoded: Box<[u8]>,
}

impl Transcoder {
    /// `from` -> `to`, sending packets of `ptime_ms`; `opus_complexity` 0-10 if `to` is Opus.
    pub fn new(
        from: CodecName,
        to: CodecName,
        ptime_ms: u32,
        opus_complexity: u8,
    ) -> Result<Transcoder, TranscodeError> {
        // Opus runs at the other side's rate: G.711's 8 kHz audio gains nothing from being
        // resampled to 48 kHz and coded fullband, and costs about four times the CPU (decode,
        // resample, encode: docs/performance.md). The far end decodes at whatever rate it likes.
        let (in_rate, out_rate) = match (from, to) {
            (CodecName::Opus, CodecName::Opus) => (48_000, 48_000),
            (CodecName::Opus, t) => (audio_rate(t), audio_rate(t)),
            (f, CodecName::Opus) => (audio_rate(f), audio_rate(f)),
            (f, t) => (audio_rate(f), audio_rate(t)),
        };
        let resampler = (in_rate != out_rate)
            .then(|| Resampler::new(in_rate, out_rate))
            .transpose()?;
        let frame = (out_rate * ptime_ms / 1000) as usize;
        Ok(Transcoder {
            decoder: Decoder::at_rate(from, in_rate)?,
            encoder: Encoder::at_rate(to, out_rate, ptime_ms, opus_complexity)?,
            in_rate,
            out_rate,
            to,
            resampler,
            decoded: vec![0; MAX_FRAME].into_boxed_slice(),
            // One payload decodes to at most 120 ms, which is at most MAX_FRAME samples at
            // any rate once resampled; the pending audio holds what is left of the last frame
            // plus one payload, with room for a generated tone burst.
            resampled: vec![0; MAX_FRAME + 16].into_boxed_slice(),
            pending: vec![0; 2 * MAX_FRAME + frame].into_boxed_slice(),
            pending_len: 0,
            decoded_len: 0,
            last_decoded: 0,
            frame,
            encoded: vec![0; 1500].into_boxed_slice(),
        })
    }

    /// RTP timestamp units one outgoing packet spans (G.722's clock is 8 kHz for 16 kHz audio).
    pub fn timestamp_step(&self) -> u32 {
        let rtp_clock = self.to.rtp_clock();
        (self.frame as u64 * u64::from(rtp_clock) / u64::from(self.out_rate)) as u32
    }

    /// Feeds one incoming payload (`None`: lost); calls `emit` with each complete outgoing
    /// payload.
    pub fn push(
        &mut self,
        payload: Option<&[u8]>,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<(), TranscodeError> {
        self.feed(payload)?;
        while let Some(n) = self.next_payload()? {
            emit(&self.encoded[..n]);
        }
        Ok(())
    }

    /// Decodes one incoming payload into the outgoing stream's pending audio. A lost packet
    /// (`None`) is concealed: Opus by its own loss concealment, the others by silence as long
    /// as the last packet, so the outgoing timeline keeps pace with the sender's.
    pub fn feed(&mut self, payload: Option<&[u8]>) -> Result<(), TranscodeError> {
        let mut n = self.decoder.decode(payload, &mut self.decoded)?;
        if payload.is_none() && n == 0 {
            n = self.last_decoded.min(self.decoded.len());
            self.decoded[..n].fill(0);
        }
        if payload.is_some() {
            self.last_decoded = n;
        }
        self.decoded_len = n;
        let audio: &[i16] = match &mut self.resampler {
            Some(r) => {
                let m = r.process(&self.decoded[..n], &mut self.resampled)?;
                &self.resampled[..m]
            }
            None => &self.decoded[..n],
        };
        let room = self.pending.len() - self.pending_len;
        let take = audio.len().min(room);
        self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&audio[..take]);
        self.pending_len += take;
        Ok(())
    }

    /// The audio the last [`Transcoder::feed`] decoded, at the incoming codec's rate (for
    /// in-band DTMF detection).
    pub fn decoded(&self) -> &[i16] {
        &self.decoded[..self.decoded_len]
    }

    /// Adds audio at the outgoing rate straight to the pending stream (a generated DTMF tone
    /// replacing the sender's audio). What does not fit in 120 ms of room is dropped.
    pub fn feed_output_audio(&mut self, samples: &[i16]) {
        let room = self.pending.len() - self.pending_len;
        let take = samples.len().min(room);
        self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&samples[..take]);
        self.pending_len += take;
    }

    /// Encodes the next outgoing packet if a whole one is pending; its payload is
    /// [`Transcoder::payload`]`[..n]`.
    pub fn next_payload(&mut self) -> Result<Option<usize>, TranscodeError> {
        if self.pending_len < self.frame {
            return Ok(None);
        }
        let len = self
            .encoder
            .encode(&self.pending[..self.frame], &mut self.encoded)?;
        self.pending.copy_within(self.frame..self.pending_len, 0);
        self.pending_len -= self.frame;
        Ok(Some(len))
    }

    /// The payload [`Transcoder::next_payload`] encoded last.
    pub fn payload(&self) -> &[u8] {
        &self.encoded
    }

    /// Samples per outgoing packet at the outgoing audio rate.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Bytes of audio buffers this direction holds (the codecs' own state comes on top).
    pub fn buffer_bytes(&self) -> usize {
        2 * (self.decoded.len() + self.resampled.len() + self.pending.len()) + self.encoded.len()
    }

    /// The rate of the audio the encoder takes.
    pub fn output_rate(&self) -> u32 {
        self.out_rate
    }

    /// The rate of the audio the decoder gives ([`Transcoder::decoded`]).
    pub fn input_rate(&self) -> u32 {
        self.in_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_signal::tone_snr;

    fn tone(hz: f64, rate: u32, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                (8000.0 * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as i16
            })
            .collect()
    }

    /// Encodes `pcm` with a fresh encoder of `codec` into 20 ms payloads.
    fn payloads(codec: CodecName, pcm: &[i16]) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new(codec, 20, 5).unwrap();
        let frame = (audio_rate(codec) / 50) as usize;
        pcm.chunks_exact(frame)
            .map(|f| {
                let mut out = vec![0u8; 1500];
                let n = enc.encode(f, &mut out).unwrap();
                out.truncate(n);
                out
            })
            .collect()
    }

    fn decode_all(codec: CodecName, packets: &[Vec<u8>]) -> Vec<i16> {
        let mut dec = Decoder::new(codec).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0i16; MAX_FRAME];
        for p in packets {
            let n = dec.decode(Some(p), &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Every pair of transcodable codecs: a 1004 Hz tone in, the same tone out, above a floor
    /// per path (the weaker codec of the pair sets it). Measured (dB, one run): see
    /// docs/media.md.
    #[test]
    fn a_tone_survives_every_codec_pair() {
        use CodecName::*;
        let codecs = [Pcmu, Pcma, G722, G726_32, Opus];
        for from in codecs {
            for to in codecs {
                if from == to {
                    continue;
                }
                // 1004 Hz, not 1000: a tone whose period divides the sample rate makes the
                // quantisation error periodic and partly indistinguishable from the tone.
                let pcm = tone(1004.0, audio_rate(from), audio_rate(from) as usize);
                let input = payloads(from, &pcm);
                let mut t = Transcoder::new(from, to, 20, 5).unwrap();
                let mut out_packets = Vec::new();
                for p in &input {
                    t.push(Some(p), |o| out_packets.push(o.to_vec())).unwrap();
                }
                assert!(
                    out_packets.len() >= input.len() - 2,
                    "{from:?}->{to:?}: {} packets",
                    out_packets.len()
                );
                let audio = decode_all(to, &out_packets);
                let snr = tone_snr(&audio, 1004.0, audio_rate(to));
                let floor = if matches!(from, Opus) || matches!(to, Opus) {
                    28.0
                } else {
                    30.0
                };
                eprintln!("{from:?} -> {to:?}: {snr:.1} dB");
                assert!(
                    snr > floor,
                    "{from:?} -> {to:?}: SNR {snr:.1} dB (floor {floor})"
                );
            }
        }
    }

    #[test]
    fn ptime_conversion_and_timestamps() {
        let pcm = tone(1000.0, 8000, 8000);
        let input = payloads(CodecName::Pcmu, &pcm);
        let mut t = Transcoder::new(CodecName::Pcmu, CodecName::G722, 30, 5).unwrap();
        let mut sizes = Vec::new();
        for p in &input {
            t.push(Some(p), |o| sizes.push(o.len())).unwrap();
        }
        // 50 packets of 20 ms in, 33 of 30 ms out (240 bytes of G.722 each).
        assert_eq!(sizes.len(), 33);
        assert!(sizes.iter().all(|&s| s == 240));
        assert_eq!(
            t.timestamp_step(),
            240,
            "G.722: 30 ms on its 8 kHz RTP clock"
        );
        let o = Transcoder::new(CodecName::Pcma, CodecName::Opus, 20, 5).unwrap();
        assert_eq!(o.timestamp_step(), 960);
    }

    #[test]
    fn loss_garbage_and_unsupported_codecs() {
        let mut t = Transcoder::new(CodecName::Opus, CodecName::Pcma, 20, 5).unwrap();
        let mut n = 0;
        t.push(None, |_| n += 1).unwrap();
        let _ = t.push(Some(&[0xFF; 7]), |_| n += 1);
        let _ = t.push(Some(&[]), |_| n += 1);
        let mut g = Transcoder::new(CodecName::G722, CodecName::Pcmu, 20, 5).unwrap();
        g.push(Some(&[0x5A; 160]), |_| n += 1).unwrap();
        assert!(matches!(
            g.push(Some(&[0u8; 4000]), |_| {}),
            Err(TranscodeError::TooLong(4000))
        ));
        assert!(matches!(
            Transcoder::new(CodecName::TelephoneEvent, CodecName::Pcmu, 20, 5),
            Err(TranscodeError::Unsupported(CodecName::TelephoneEvent))
        ));
    }
}
