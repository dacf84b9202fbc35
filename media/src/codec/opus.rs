//! Opus (RFC 6716, RTP payload RFC 7587) for mono voice legs, on top of `ropus`, a pure-Rust
//! fixed-point port of libopus 1.5.2 (why not the C library: docs/decisions.md, "Opus: ropus").
//!
//! The wrappers pin what a gateway leg needs and check it up front, so a bad SDP-derived setting
//! fails at set-up with a named cause rather than on the first packet: mono, the VoIP
//! application, one of the codec rates 8/16/48 kHz (Opus picks its internal bandwidth from that
//! rate: narrowband, wideband, fullband), one packet per 10, 20, 40 or 60 ms, and FEC and DTX
//! off unless asked for (FEC costs bits on every packet; DTX makes the RTP stream
//! discontinuous, which the relay's timestamp handling then has to expect).
//!
//! Cost per stream, measured with `cargo test --release -p mgw-media --test opus_interop --
//! --ignored --nocapture measure` (x86-64 VM, 2 cores, best of 5 passes over 10 s of a
//! speech-like signal, 20 ms packets, default bitrate):
//!
//! | | 8 kHz | 16 kHz | 48 kHz |
//! |---|---|---|---|
//! | encoder: `size_of` + heap | 8 192 + 30 092 B | 8 192 + 30 292 B | 8 192 + 31 092 B |
//! | decoder: `size_of` + heap | 4 952 + 65 720 B | 4 952 + 65 720 B | 4 952 + 65 720 B |
//! | encode, complexity 0 / 5 / 10 | 32 / 68 / 119 us | 55 / 131 / 261 us | 95 / 178 / 111 us |
//! | decode | 7 us | 14 us | 37 us |
//! | heap allocations per call, encode / decode | 94 / 11 | 128 / 11 | 152 / 16 |
//! | mean packet at 12 / 20 / 32 kbit/s | 30 B | 50 B | 80 B |
//!
//! So about 110 KB per transcoded Opus leg (encoder and decoder). At 48 kHz complexity 10 is
//! cheaper than 5 only because its signal analysis (complexity 7 and up) judged the synthetic
//! test signal to be music and chose CELT for 94 % of the packets; real speech stays on the
//! costlier hybrid mode. `ropus` allocates scratch buffers inside every call; those are small
//! and freed before it returns, but they are allocator traffic in the media path.

use std::fmt;

use ropus::{
    Application, Bitrate, Channels, DecodeError, DecodeMode, Decoder, DecoderInitError,
    EncodeError, Encoder, EncoderBuildError, InbandFec,
};

/// The codec rates a leg may use; Opus chooses its internal bandwidth from the rate.
pub const SAMPLE_RATES: [u32; 3] = [8_000, 16_000, 48_000];

/// Packet durations the encoder produces (RFC 7587 `ptime`).
pub const PTIMES_MS: [u32; 4] = [10, 20, 40, 60];

/// Output buffer size libopus recommends for one packet; voice packets stay far below it.
pub const MAX_PACKET_BYTES: usize = 4_000;

/// The longest duration one Opus packet can carry (RFC 6716 section 3.2.5).
const MAX_PACKET_MS: usize = 120;

/// What RFC 7587 section 3.1.1 recommends for speech at each rate: the top of the narrowband
/// and wideband ranges and the middle of the fullband range.
pub fn default_bitrate(sample_rate: u32) -> u32 {
    match sample_rate {
        8_000 => 12_000,
        16_000 => 20_000,
        _ => 32_000,
    }
}

/// Encoder settings. [`OpusConfig::new`] gives the defaults for a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// 8000, 16000 or 48000.
    pub sample_rate: u32,
    /// 10, 20, 40 or 60.
    pub ptime_ms: u32,
    /// 0 (cheapest) to 10 (best). 5 halves the encode time of 10 at a small loss in quality.
    pub complexity: u8,
    /// Target in bit/s, 6 000 to 510 000 (the Opus range). Variable bitrate.
    pub bitrate: u32,
    /// In-band forward error correction (a low-rate copy of the previous frame).
    pub fec: bool,
    /// The loss rate the encoder plans for, 0 to 100; FEC only spends bits when this is above 0.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission: no packets during silence.
    pub dtx: bool,
}

impl OpusConfig {
    /// 20 ms packets, complexity 5, [`default_bitrate`], FEC and DTX off.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            ptime_ms: 20,
            complexity: 5,
            bitrate: default_bitrate(sample_rate),
            fec: false,
            expected_loss_percent: 0,
            dtx: false,
        }
    }

    fn check(&self) -> Result<(), OpusError> {
        check_rate(self.sample_rate)?;
        if !PTIMES_MS.contains(&self.ptime_ms) {
            return Err(OpusError::UnsupportedPtime(self.ptime_ms));
        }
        if self.complexity > 10 {
            return Err(OpusError::ComplexityOutOfRange(self.complexity));
        }
        // libopus would silently clamp; a typo in a configured bitrate should be visible.
        if !(6_000..=510_000).contains(&self.bitrate) {
            return Err(OpusError::BitrateOutOfRange(self.bitrate));
        }
        if self.expected_loss_percent > 100 {
            return Err(OpusError::LossPercentOutOfRange(self.expected_loss_percent));
        }
        Ok(())
    }

    /// Samples in one packet's frame.
    pub fn frame_samples(&self) -> usize {
        samples(self.sample_rate, self.ptime_ms as usize)
    }
}

fn samples(sample_rate: u32, ms: usize) -> usize {
    sample_rate as usize / 1000 * ms
}

fn check_rate(sample_rate: u32) -> Result<(), OpusError> {
    if SAMPLE_RATES.contains(&sample_rate) {
        Ok(())
    } else {
        Err(OpusError::UnsupportedSampleRate(sample_rate))
    }
}

/// Why an Opus operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusError {
    /// The rate is not one of [`SAMPLE_RATES`].
    UnsupportedSampleRate(u32),
    /// The packet duration is not one of [`PTIMES_MS`].
    UnsupportedPtime(u32),
    /// Complexity above 10.
    ComplexityOutOfRange(u8),
    /// Bitrate outside 6 000..=510 000 bit/s.
    BitrateOutOfRange(u32),
    /// Expected loss above 100 %.
    LossPercentOutOfRange(u8),
    /// `encode` got a frame of the wrong length for the configured rate and ptime.
    FrameLength { expected: usize, got: usize },
    /// The output buffer cannot hold the packet (encode) or the decoded samples (decode).
    BufferTooSmall,
    /// The packet is not a valid Opus packet.
    InvalidPacket,
    /// The codec refused an argument these wrappers let through (a bug here, not in the input).
    BadArgument,
    /// The codec reported an internal failure; the libopus error code.
    Internal(i32),
}

impl fmt::Display for OpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedSampleRate(r) => {
                write!(
                    f,
                    "Opus sample rate {r} Hz not supported (8000, 16000 or 48000)"
                )
            }
            Self::UnsupportedPtime(p) => {
                write!(f, "Opus ptime {p} ms not supported (10, 20, 40 or 60)")
            }
            Self::ComplexityOutOfRange(c) => write!(f, "Opus complexity {c} above 10"),
            Self::BitrateOutOfRange(b) => {
                write!(f, "Opus bitrate {b} bit/s outside 6000..=510000")
            }
            Self::LossPercentOutOfRange(p) => write!(f, "expected loss {p} % above 100"),
            Self::FrameLength { expected, got } => {
                write!(f, "Opus frame of {got} samples, expected {expected}")
            }
            Self::BufferTooSmall => f.write_str("output buffer too small for the Opus frame"),
            Self::InvalidPacket => f.write_str("malformed Opus packet"),
            Self::BadArgument => f.write_str("Opus codec rejected an argument"),
            Self::Internal(code) => write!(f, "Opus codec internal error {code}"),
        }
    }
}

impl std::error::Error for OpusError {}

impl From<EncoderBuildError> for OpusError {
    fn from(e: EncoderBuildError) -> Self {
        match e {
            EncoderBuildError::BadArg => Self::BadArgument,
            EncoderBuildError::Internal => Self::Internal(ropus::OPUS_INTERNAL_ERROR),
            EncoderBuildError::Unknown(code) => Self::Internal(code),
        }
    }
}

impl From<EncodeError> for OpusError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::BadArg => Self::BadArgument,
            EncodeError::BufferTooSmall => Self::BufferTooSmall,
            EncodeError::Internal => Self::Internal(ropus::OPUS_INTERNAL_ERROR),
            EncodeError::Unknown(code) => Self::Internal(code),
        }
    }
}

impl From<DecoderInitError> for OpusError {
    fn from(e: DecoderInitError) -> Self {
        match e {
            DecoderInitError::BadArg => Self::BadArgument,
            DecoderInitError::Internal => Self::Internal(ropus::OPUS_INTERNAL_ERROR),
            DecoderInitError::Unknown(code) => Self::Internal(code),
        }
    }
}

impl From<DecodeError> for OpusError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::BadArg => Self::BadArgument,
            DecodeError::BufferTooSmall => Self::BufferTooSmall,
            DecodeError::InvalidPacket => Self::InvalidPacket,
            DecodeError::Internal => Self::Internal(ropus::OPUS_INTERNAL_ERROR),
            DecodeError::Unknown(code) => Self::Internal(code),
        }
    }
}

/// One leg's Opus encoder: 16-bit mono PCM frames in, one packet per frame out.
pub struct OpusEncoder {
    inner: Encoder,
    config: OpusConfig,
    frame_samples: usize,
}

impl OpusEncoder {
    pub fn new(config: OpusConfig) -> Result<Self, OpusError> {
        config.check()?;
        let inner = Encoder::builder(config.sample_rate, Channels::Mono, Application::Voip)
            .complexity(config.complexity)
            .bitrate(Bitrate::Bits(config.bitrate))
            // Set even when off: the defaults are the codec's, and these are ours to state.
            .inband_fec(if config.fec {
                InbandFec::Enabled
            } else {
                InbandFec::Disabled
            })
            .packet_loss_perc(config.expected_loss_percent)
            .dtx(config.dtx)
            .build()?;
        Ok(Self {
            inner,
            config,
            frame_samples: config.frame_samples(),
        })
    }

    pub fn config(&self) -> &OpusConfig {
        &self.config
    }

    /// Samples `encode` expects per call.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes exactly one frame ([`frame_samples`](Self::frame_samples) samples) into `out`
    /// and returns the packet length. [`MAX_PACKET_BYTES`] always suffices; a smaller `out`
    /// caps the packet size, and the encoder lowers the frame's bitrate to fit. With DTX on,
    /// a length of 1 or 2 during silence means "send nothing".
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        if pcm.len() != self.frame_samples {
            return Err(OpusError::FrameLength {
                expected: self.frame_samples,
                got: pcm.len(),
            });
        }
        Ok(self.inner.encode(pcm, out)?)
    }
}

/// One leg's Opus decoder. Any valid packet decodes, whatever ptime or bandwidth the sender
/// chose; the output is always at the decoder's rate.
pub struct OpusDecoder {
    inner: Decoder,
    max_samples: usize,
    /// What concealment fills for a lost packet: the duration of the last packet, as libopus's
    /// own PLC assumes the loss looks like its neighbours.
    plc_samples: usize,
}

impl OpusDecoder {
    pub fn new(sample_rate: u32) -> Result<Self, OpusError> {
        check_rate(sample_rate)?;
        Ok(Self {
            inner: Decoder::new(sample_rate, Channels::Mono)?,
            max_samples: samples(sample_rate, MAX_PACKET_MS),
            // RFC 7587's default ptime, until a packet says otherwise.
            plc_samples: samples(sample_rate, 20),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    /// An `out` of this many samples holds any packet (120 ms).
    pub fn max_frame_samples(&self) -> usize {
        self.max_samples
    }

    /// Decodes `packet` into `out` and returns the number of samples written. `None` (or an
    /// empty packet, which libopus treats the same way) conceals one lost packet of the previous
    /// packet's duration. Fails with [`OpusError::BufferTooSmall`] when `out` is shorter than
    /// the packet's duration and with [`OpusError::InvalidPacket`] for bytes that are not Opus;
    /// the decoder stays usable after either.
    pub fn decode(&mut self, packet: Option<&[u8]>, out: &mut [i16]) -> Result<usize, OpusError> {
        match packet {
            Some(p) if !p.is_empty() => {
                let room = out.len().min(self.max_samples);
                let n = self.inner.decode(p, &mut out[..room], DecodeMode::Normal)?;
                if n > 0 {
                    self.plc_samples = n;
                }
                Ok(n)
            }
            _ => {
                // The codec conceals as many samples as the buffer it is given.
                let n = self.plc_samples;
                let Some(target) = out.get_mut(..n) else {
                    return Err(OpusError::BufferTooSmall);
                };
                Ok(self.inner.decode(&[], target, DecodeMode::Normal)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    /// Best SNR over delays 0..max_delay, skipping the first `skip` samples of warm-up.
    fn aligned_snr_db(x: &[i16], y: &[i16], skip: usize, max_delay: usize) -> f64 {
        (0..max_delay)
            .map(|d| {
                let n = x.len().min(y.len().saturating_sub(d));
                let (mut s, mut e) = (0.0f64, 0.0f64);
                for i in skip..n {
                    let a = f64::from(x[i]);
                    let b = f64::from(y[i + d]);
                    s += a * a;
                    e += (a - b) * (a - b);
                }
                10.0 * (s / e.max(1e-9)).log10()
            })
            .fold(f64::NEG_INFINITY, f64::max)
    }

    #[test]
    fn round_trip_keeps_a_tone_at_every_rate_and_ptime() {
        for rate in SAMPLE_RATES {
            for ptime in PTIMES_MS {
                let config = OpusConfig {
                    ptime_ms: ptime,
                    ..OpusConfig::new(rate)
                };
                let mut enc = OpusEncoder::new(config).unwrap();
                let mut dec = OpusDecoder::new(rate).unwrap();
                let frame = enc.frame_samples();
                assert_eq!(frame, rate as usize / 1000 * ptime as usize);
                let x = tone(rate, 1000.0, rate as usize / 2);
                let mut y = Vec::new();
                let mut pkt = [0u8; MAX_PACKET_BYTES];
                let mut pcm = vec![0i16; dec.max_frame_samples()];
                for f in x.chunks_exact(frame) {
                    let len = enc.encode(f, &mut pkt).unwrap();
                    assert!(len > 0 && len < 400, "{rate} {ptime}: {len} bytes");
                    let n = dec.decode(Some(&pkt[..len]), &mut pcm).unwrap();
                    assert_eq!(n, frame);
                    y.extend_from_slice(&pcm[..n]);
                }
                let snr = aligned_snr_db(&x, &y, rate as usize / 10, rate as usize / 100);
                assert!(snr > 12.0, "{rate} Hz, {ptime} ms: SNR {snr:.1} dB");
            }
        }
    }

    #[test]
    fn concealment_fills_the_last_packet_duration() {
        let mut enc = OpusEncoder::new(OpusConfig {
            ptime_ms: 40,
            ..OpusConfig::new(16_000)
        })
        .unwrap();
        let mut dec = OpusDecoder::new(16_000).unwrap();
        let mut pcm = vec![0i16; dec.max_frame_samples()];
        // Before any packet: 20 ms.
        assert_eq!(dec.decode(None, &mut pcm), Ok(320));
        let x = tone(16_000, 440.0, 640);
        let mut pkt = [0u8; MAX_PACKET_BYTES];
        let len = enc.encode(&x, &mut pkt).unwrap();
        assert_eq!(dec.decode(Some(&pkt[..len]), &mut pcm), Ok(640));
        assert_eq!(dec.decode(None, &mut pcm), Ok(640));
        assert_eq!(dec.decode(Some(&[]), &mut pcm), Ok(640));
        assert_eq!(
            dec.decode(None, &mut pcm[..100]),
            Err(OpusError::BufferTooSmall)
        );
    }

    #[test]
    fn bad_settings_name_their_cause() {
        let base = OpusConfig::new(48_000);
        let cases = [
            (
                OpusConfig::new(44_100),
                OpusError::UnsupportedSampleRate(44_100),
            ),
            (
                OpusConfig {
                    ptime_ms: 30,
                    ..base
                },
                OpusError::UnsupportedPtime(30),
            ),
            (
                OpusConfig {
                    complexity: 11,
                    ..base
                },
                OpusError::ComplexityOutOfRange(11),
            ),
            (
                OpusConfig {
                    bitrate: 5_999,
                    ..base
                },
                OpusError::BitrateOutOfRange(5_999),
            ),
            (
                OpusConfig {
                    expected_loss_percent: 101,
                    ..base
                },
                OpusError::LossPercentOutOfRange(101),
            ),
        ];
        for (config, err) in cases {
            assert_eq!(OpusEncoder::new(config).err(), Some(err));
        }
        assert_eq!(
            OpusDecoder::new(12_000).err(),
            Some(OpusError::UnsupportedSampleRate(12_000))
        );
    }

    #[test]
    fn every_complexity_and_fec_dtx_build() {
        for complexity in 0..=10 {
            let config = OpusConfig {
                complexity,
                fec: true,
                expected_loss_percent: 10,
                dtx: true,
                ..OpusConfig::new(8_000)
            };
            let mut enc = OpusEncoder::new(config).unwrap();
            let mut pkt = [0u8; MAX_PACKET_BYTES];
            assert!(enc.encode(&[0; 160], &mut pkt).unwrap() > 0);
        }
    }

    #[test]
    fn wrong_frame_length_and_small_buffers_are_errors() {
        let mut enc = OpusEncoder::new(OpusConfig::new(8_000)).unwrap();
        let mut pkt = [0u8; MAX_PACKET_BYTES];
        assert_eq!(
            enc.encode(&[0; 161], &mut pkt),
            Err(OpusError::FrameLength {
                expected: 160,
                got: 161
            })
        );
        assert_eq!(
            enc.encode(&[0; 160], &mut []),
            Err(OpusError::BufferTooSmall)
        );

        let len = enc.encode(&tone(8_000, 1000.0, 160), &mut pkt).unwrap();
        let mut dec = OpusDecoder::new(8_000).unwrap();
        let mut pcm = [0i16; 80];
        assert_eq!(
            dec.decode(Some(&pkt[..len]), &mut pcm),
            Err(OpusError::BufferTooSmall)
        );
        // A TOC byte announcing a code-3 packet with no frame count byte.
        assert_eq!(
            dec.decode(Some(&[0x03]), &mut [0i16; 960]),
            Err(OpusError::InvalidPacket)
        );
    }

    #[test]
    fn decoder_follows_the_sender_rate_and_ptime() {
        // A 48 kHz fullband 60 ms packet decoded by an 8 kHz leg: 480 samples at 8 kHz.
        let mut enc = OpusEncoder::new(OpusConfig {
            ptime_ms: 60,
            ..OpusConfig::new(48_000)
        })
        .unwrap();
        let mut pkt = [0u8; MAX_PACKET_BYTES];
        let len = enc.encode(&tone(48_000, 1000.0, 2880), &mut pkt).unwrap();
        let mut dec = OpusDecoder::new(8_000).unwrap();
        let mut pcm = vec![0i16; dec.max_frame_samples()];
        assert_eq!(dec.decode(Some(&pkt[..len]), &mut pcm), Ok(480));
    }
}
