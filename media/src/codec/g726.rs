//! G.726 (ITU-T G.726) at 32 kbit/s: 4-bit ADPCM of 8 kHz linear PCM, the narrowband codec
//! of DECT and of RTP's `G726-32` / `AAL2-G726-32` payload formats.
//!
//! Which part of the Recommendation each piece implements (1990 text, §4.2 sub-blocks):
//! - §4.2.1 input conversion for uniform PCM (16-bit samples are taken to 14 bits) and
//!   SUBTA, the difference signal.
//! - §4.2.2 adaptive quantizer LOG, SUBTB, QUAN with the 32 kbit/s decision levels.
//! - §4.2.3 inverse adaptive quantizer RECONST, ADDA, ANTILOG.
//! - §4.2.4 quantizer scale factor adaptation FUNCTW, FILTD, LIMB, FILTE, MIX.
//! - §4.2.5 adaptation speed control FUNCTF, FILTA, FILTB, SUBTC, FILTC, TRIGA, LIMA.
//! - §4.2.6 adaptive predictor: FMULT, ACCUM, ADDB, ADDC, FLOATA, FLOATB, UPA2, UPA1, LIMC,
//!   LIMD, UPB, XOR, TRIGB.
//! - §4.2.7 tone and transition detector TONE, TRANS.
//! - §4.2.8 output conversion for uniform PCM (no synchronous coding adjustment, which only
//!   applies to G.711 output).
//!
//! Packing (RFC 3551 §4.5.4): `G726-32` puts the first sample's code in the four least
//! significant bits of an octet ([`Packing::Rfc3551`]); `AAL2-G726-32` uses the ITU-T
//! I.366.2 order with the first code in the four most significant bits ([`Packing::Aal2`]).
//!
//! The ITU test sequences are not available here. Instead this code was cross-checked bit
//! for bit against an independent implementation (spandsp's, which passes those sequences)
//! on tones, DTMF, chirps, noise, full-scale square waves and random code streams: the codes
//! and the decoder state agree everywhere; the only difference is that this decoder
//! saturates output samples where spandsp lets them wrap, which only corrupt or overloaded
//! streams reach. A test pins digests of that comparison; others pin the quantizer tables
//! against the Recommendation's normalised values.
//!
//! Measured SNR through encode + decode, amplitude 8000, after the first 100 ms: 300 Hz
//! 51.2 dB, 1 kHz 36.3 dB, 3 kHz 36.9 dB; white-ish noise at -20 dBFS 19.1 dB. ADPCM adds
//! no delay.

/// Octet order of the two 4-bit codes (RFC 3551 §4.5.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Packing {
    /// `G726-32`: first code in bits 0..=3, second in bits 4..=7.
    #[default]
    Rfc3551,
    /// `AAL2-G726-32`: first code in bits 4..=7, second in bits 0..=3.
    Aal2,
}

impl Packing {
    fn pack(self, first: u8, second: u8) -> u8 {
        match self {
            Packing::Rfc3551 => first | (second << 4),
            Packing::Aal2 => (first << 4) | second,
        }
    }

    fn unpack(self, octet: u8) -> [u8; 2] {
        match self {
            Packing::Rfc3551 => [octet & 0x0F, octet >> 4],
            Packing::Aal2 => [octet >> 4, octet & 0x0F],
        }
    }
}

/// QUAN decision levels for |I| = 1..7 on the log2 scale (DLN, units of 2^-7): |I| is the
/// number of levels at or below DLN.
pub const QUANT_LEVELS: [i32; 7] = [-124, 80, 178, 246, 300, 349, 400];
/// RECONST output DQLN per |I| (units of 2^-7); -2048 stands for minus infinity.
pub const DQLN: [i32; 8] = [-2048, 4, 135, 213, 273, 323, 373, 425];
/// FUNCTW scale factor multipliers W(|I|) (units of 2^-4).
pub const W: [i32; 8] = [-12, 18, 41, 64, 112, 198, 355, 1122];
/// FUNCTF speed control input F(|I|).
pub const F: [i32; 8] = [0, 0, 0, 1, 1, 1, 3, 7];

/// Magnitude of a 4-bit code: the sign bit is followed by the ones' complement of |I|, so
/// 1111 is "negative zero" and the encoder never needs the all-zero code.
fn magnitude(code: u8) -> usize {
    usize::from(if code & 8 != 0 { 15 - code } else { code })
}

/// The predictor's 11-bit floating-point format (FLOATA / FLOATB): sign, 4-bit exponent and
/// 6-bit mantissa normalised to 32..=63, zero being exponent 0 with mantissa 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Float {
    neg: bool,
    exp: i32,
    mant: i32,
}

impl Float {
    const ZERO: Float = Float {
        neg: false,
        exp: 0,
        mant: 32,
    };

    /// `mag` must be below 2^15, which every caller guarantees.
    fn new(neg: bool, mag: i32) -> Float {
        if mag == 0 {
            Float {
                neg,
                exp: 0,
                mant: 32,
            }
        } else {
            let exp = bit_len(mag);
            Float {
                neg,
                exp,
                mant: (mag << 6) >> exp,
            }
        }
    }
}

/// Two's complement wrap to a 16-bit word.
fn wrap16(v: i32) -> i32 {
    i32::from(v as i16)
}

/// Number of significant bits of a non-negative value below 2^15 (the Recommendation's
/// exponent computation).
fn bit_len(v: i32) -> i32 {
    32 - v.leading_zeros() as i32
}

/// FMULT: a predictor coefficient times a floating-point history value. The product is
/// formed in the same reduced precision as the Recommendation, since encoder and decoder
/// must agree to the bit, whatever implementation sits at the other end.
fn fmult(coeff: i32, value: Float) -> i32 {
    let an = coeff >> 2;
    let anmag = if an > 0 { an } else { (-an) & 0x1FFF };
    let anexp = bit_len(anmag) - 6;
    let anmant = if anmag == 0 {
        32
    } else if anexp >= 0 {
        anmag >> anexp
    } else {
        anmag << -anexp
    };
    let wanexp = anexp + value.exp - 13;
    let wanmant = (anmant * value.mant + 48) >> 4;
    let mag = if wanexp >= 0 {
        (wanmant << wanexp) & 0x7FFF
    } else {
        wanmant >> -wanexp
    };
    if (an < 0) != value.neg {
        -mag
    } else {
        mag
    }
}

/// Quantised difference DQ in sign-magnitude form, as the Recommendation keeps it: the sign
/// of a zero magnitude still matters to the predictor's sign-based updates.
#[derive(Clone, Copy, Debug)]
struct Dq {
    neg: bool,
    mag: i32,
}

/// The ADPCM state shared in structure by encoder and decoder (which keep identical copies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Adpcm {
    /// Fast (unlocked) quantizer scale factor YU, 9 fractional bits.
    yu: i32,
    /// Slow (locked) scale factor YL, 15 fractional bits.
    yl: i32,
    /// Short- and long-term averages of F(I) for the speed control.
    dms: i32,
    dml: i32,
    /// Speed control AP; at 256 and above the fast scale factor is used alone.
    ap: i32,
    /// Pole coefficients A1, A2 (14 fractional bits).
    a: [i32; 2],
    /// Zero coefficients B1..B6.
    b: [i32; 6],
    /// Signs of DQ + SEZ for the last two samples.
    pk: [bool; 2],
    /// DQ history, newest first.
    dq: [Float; 6],
    /// Reconstructed signal history, newest first.
    sr: [Float; 2],
    /// Tone detected (a narrowband signal such as a modem carrier).
    td: bool,
}

impl Adpcm {
    /// The reset state of the Recommendation.
    const fn new() -> Self {
        Adpcm {
            yu: 544,
            yl: 34_816,
            dms: 0,
            dml: 0,
            ap: 0,
            a: [0; 2],
            b: [0; 6],
            pk: [false; 2],
            dq: [Float::ZERO; 6],
            sr: [Float::ZERO; 2],
            td: false,
        }
    }

    /// ACCUM: the signal estimate SE and its zero-section part SEZ. The sums are 16-bit
    /// words in the Recommendation and wrap as such; a valid stream never gets there, but a
    /// corrupt one does, and wrapping (rather than saturating) is what keeps this decoder in
    /// step with others on such a stream. It also bounds SE to 15 bits, and with it SR.
    fn estimate(&self) -> (i32, i32) {
        let sezi: i32 = self
            .b
            .iter()
            .zip(&self.dq)
            .map(|(b, dq)| fmult(*b, *dq))
            .sum();
        let sezi = wrap16(sezi);
        let sei = wrap16(sezi + fmult(self.a[0], self.sr[0]) + fmult(self.a[1], self.sr[1]));
        (sei >> 1, sezi >> 1)
    }

    /// MIX: the quantizer scale factor Y, between the fast and the slow one as AP says.
    fn step_size(&self) -> i32 {
        if self.ap >= 256 {
            return self.yu;
        }
        let y = self.yl >> 6;
        let dif = self.yu - y;
        let al = self.ap >> 2;
        // The product is sign-magnitude in the Recommendation, so it truncates toward zero.
        let prod = dif * al;
        y + if prod < 0 { -((-prod) >> 6) } else { prod >> 6 }
    }

    /// Encodes one 16-bit sample to a 4-bit code.
    fn encode(&mut self, pcm: i16) -> u8 {
        let sl = i32::from(pcm) >> 2;
        let (se, sez) = self.estimate();
        let d = sl - se;
        let y = self.step_size();
        let code = quantize(d, y);
        self.reconstruct_and_adapt(code, y, se, sez);
        code
    }

    /// Decodes one 4-bit code (the high bits are ignored) to a 16-bit sample.
    fn decode(&mut self, code: u8) -> i16 {
        let code = code & 0x0F;
        let (se, sez) = self.estimate();
        let y = self.step_size();
        let sr = self.reconstruct_and_adapt(code, y, se, sez);
        // Back from 14 to 16 bits. Only overload (a full-scale input through the encoder) or
        // a corrupt stream gets past 16 bits here, and a clipped sample sounds better there
        // than a wrapped one.
        (sr << 2).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
    }

    /// The part common to both directions: inverse quantizer, reconstruction and every
    /// adaptation. Returns the reconstructed signal SR.
    fn reconstruct_and_adapt(&mut self, code: u8, y: i32, se: i32, sez: i32) -> i32 {
        let m = magnitude(code);
        let dq = inverse_quantize(code, y);
        // ADDB. With SE held to 15 bits (see `estimate`) and |DQ| < 2^14, SR always fits its
        // 16-bit word, so FLOATB never sees -2^15.
        let sr = if dq.neg { se - dq.mag } else { se + dq.mag };
        // ADDC.
        let dqsez = if dq.neg { sez - dq.mag } else { sez + dq.mag };
        self.adapt(m, y, dq, sr, dqsez);
        sr
    }

    fn adapt(&mut self, m: usize, y: i32, dq: Dq, sr: i32, dqsez: i32) {
        let pk0 = dqsez < 0;

        // TRANS: a large DQ while a tone was detected means a transition (e.g. the end of a
        // modem training tone), on which the predictor is reset.
        let ylint = self.yl >> 15;
        let ylfrac = (self.yl >> 10) & 0x1F;
        let thr = if ylint > 9 {
            31 << 10
        } else {
            (32 + ylfrac) << ylint
        };
        let dqthr = (thr + (thr >> 1)) >> 1;
        let tr = self.td && dq.mag > dqthr;

        // FUNCTW, FILTD, LIMB, FILTE.
        self.yu = (y + (((W[m] << 5) - y) >> 5)).clamp(544, 5120);
        self.yl += self.yu + ((-self.yl) >> 6);

        let mut a2 = 0;
        if tr {
            // TRIGB.
            self.a = [0; 2];
            self.b = [0; 6];
        } else {
            let pks1 = pk0 != self.pk[0];
            let sigpk = dqsez == 0;

            // UPA2 + LIMC.
            a2 = self.a[1] - (self.a[1] >> 7);
            if !sigpk {
                let fa1 = if pks1 { self.a[0] } else { -self.a[0] };
                a2 += if fa1 < -8191 {
                    -256
                } else if fa1 > 8191 {
                    255
                } else {
                    fa1 >> 5
                };
                a2 += if pk0 != self.pk[1] { -128 } else { 128 };
                a2 = a2.clamp(-12_288, 12_288);
            }

            // UPA1 + LIMD: the bound on A1 keeps the two-pole section stable.
            let mut a1 = self.a[0] - (self.a[0] >> 8);
            if !sigpk {
                a1 += if pks1 { -192 } else { 192 };
            }
            let a1_limit = 15_360 - a2;
            self.a = [a1.clamp(-a1_limit, a1_limit), a2];

            // UPB + XOR. B is a 16-bit word with no limiter, so it wraps like ACCUM.
            for (b, hist) in self.b.iter_mut().zip(&self.dq) {
                let mut nb = *b - (*b >> 8);
                if dq.mag != 0 {
                    nb += if dq.neg == hist.neg { 128 } else { -128 };
                }
                *b = wrap16(nb);
            }
        }

        // FLOATA, FLOATB and the delays.
        self.dq.copy_within(0..5, 1);
        self.dq[0] = Float::new(dq.neg, dq.mag);
        self.sr[1] = self.sr[0];
        self.sr[0] = Float::new(sr < 0, sr.abs());
        self.pk = [pk0, self.pk[0]];

        // TONE: a strongly negative A2 means a narrowband signal.
        self.td = !tr && a2 < -11_776;

        // FUNCTF, FILTA, FILTB, SUBTC, FILTC, TRIGA: speed up adaptation for signals whose
        // short- and long-term code statistics differ (speech), slow it for stationary ones.
        let fi = F[m] << 9;
        self.dms += (fi - self.dms) >> 5;
        self.dml += ((fi << 2) - self.dml) >> 7;
        self.ap = if tr {
            256
        } else if y < 1536 || self.td || ((self.dms << 2) - self.dml).abs() >= (self.dml >> 3) {
            self.ap + ((512 - self.ap) >> 4)
        } else {
            self.ap + ((-self.ap) >> 4)
        };
    }
}

/// LOG, SUBTB, QUAN: the 4-bit code of difference `d` for scale factor `y`.
fn quantize(d: i32, y: i32) -> u8 {
    let dqm = d.abs();
    let exp = bit_len(dqm >> 1);
    let mant = ((dqm << 7) >> exp) & 0x7F;
    let dln = (exp << 7) + mant - (y >> 2);
    let m = QUANT_LEVELS
        .iter()
        .take_while(|level| dln >= **level)
        .count() as u8;
    if d < 0 {
        15 - m
    } else if m == 0 {
        // Positive zero is sent as negative zero so that no octet is all zeros.
        15
    } else {
        m
    }
}

/// RECONST, ADDA, ANTILOG: the quantised difference DQ of a code.
fn inverse_quantize(code: u8, y: i32) -> Dq {
    let neg = code & 8 != 0;
    let dql = DQLN[magnitude(code)] + (y >> 2);
    if dql < 0 {
        return Dq { neg, mag: 0 };
    }
    // Y <= 5120 keeps DQL below 1920, so the exponent is at most 13.
    let dex = ((dql >> 7) & 15).min(14);
    let dqt = 128 + (dql & 127);
    Dq {
        neg,
        mag: (dqt << 7) >> (14 - dex),
    }
}

/// G.726 32 kbit/s encoder: 8 kHz 16-bit samples in, two 4-bit codes per octet out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct G726Encoder {
    state: Adpcm,
    packing: Packing,
}

impl Default for G726Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G726Encoder {
    /// An encoder producing the RFC 3551 `G726-32` octet order.
    pub const fn new() -> Self {
        Self::with_packing(Packing::Rfc3551)
    }

    pub const fn with_packing(packing: Packing) -> Self {
        G726Encoder {
            state: Adpcm::new(),
            packing,
        }
    }

    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// Back to the reset state of the Recommendation; the packing is kept.
    pub fn reset(&mut self) {
        self.state = Adpcm::new();
    }

    /// Encodes pairs of samples into octets and returns the number of octets written:
    /// `min(pcm8k.len() / 2, out.len())`. A trailing odd sample is not consumed (see
    /// [`Self::encode_sample`] for unpacked use).
    pub fn encode(&mut self, pcm8k: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (pair, o) in pcm8k.chunks_exact(2).zip(out.iter_mut()) {
            let first = self.state.encode(pair[0]);
            let second = self.state.encode(pair[1]);
            *o = self.packing.pack(first, second);
            n += 1;
        }
        n
    }

    /// Encodes one sample to its 4-bit code (in the low bits).
    pub fn encode_sample(&mut self, pcm: i16) -> u8 {
        self.state.encode(pcm)
    }
}

/// G.726 32 kbit/s decoder: octets of two 4-bit codes in, 8 kHz 16-bit samples out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct G726Decoder {
    state: Adpcm,
    packing: Packing,
}

impl Default for G726Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G726Decoder {
    /// A decoder for the RFC 3551 `G726-32` octet order.
    pub const fn new() -> Self {
        Self::with_packing(Packing::Rfc3551)
    }

    pub const fn with_packing(packing: Packing) -> Self {
        G726Decoder {
            state: Adpcm::new(),
            packing,
        }
    }

    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// Back to the reset state of the Recommendation; the packing is kept.
    pub fn reset(&mut self) {
        self.state = Adpcm::new();
    }

    /// Decodes octets into samples, two per octet, and returns the number of samples
    /// written: `2 * min(codes.len(), out.len() / 2)`. Every octet value is valid.
    pub fn decode(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (octet, pair) in codes.iter().zip(out.chunks_exact_mut(2)) {
            let [first, second] = self.packing.unpack(*octet);
            pair[0] = self.state.decode(first);
            pair[1] = self.state.decode(second);
            n += 2;
        }
        n
    }

    /// Decodes one 4-bit code (the low bits of `code`) to a sample.
    pub fn decode_sample(&mut self, code: u8) -> i16 {
        self.state.decode(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_signal::{self, aligned_snr, pseudo_random_bytes};

    const RATE: f64 = 8000.0;

    fn tone(hz: f64, amplitude: f64, n: usize) -> Vec<i16> {
        test_signal::tone(hz, amplitude, n, RATE)
    }

    fn round_trip(pcm: &[i16], packing: Packing) -> Vec<i16> {
        let mut codes = vec![0u8; pcm.len() / 2];
        assert_eq!(
            G726Encoder::with_packing(packing).encode(pcm, &mut codes),
            codes.len()
        );
        let mut out = vec![0i16; pcm.len()];
        assert_eq!(
            G726Decoder::with_packing(packing).decode(&codes, &mut out),
            out.len()
        );
        out
    }

    fn dominant_hz(x: &[i16]) -> f64 {
        test_signal::dominant_hz(x, RATE)
    }

    #[test]
    fn quantizer_tables_match_the_recommendation() {
        // Normalised decision levels and reconstruction levels of the 32 kbit/s quantizer,
        // log2 |D| - Y, as listed in the Recommendation; the fixed-point tables are these
        // times 128, within the rounding the Recommendation chose.
        let levels = [-0.98, 0.62, 1.38, 1.91, 2.34, 2.72, 3.12];
        let recon = [0.031, 1.05, 1.66, 2.13, 2.52, 2.91, 3.32];
        for (fixed, real) in QUANT_LEVELS.iter().zip(levels) {
            assert!(
                (f64::from(*fixed) - real * 128.0).abs() < 2.0,
                "{fixed} vs {real}"
            );
        }
        for (fixed, real) in DQLN[1..].iter().zip(recon) {
            assert!(
                (f64::from(*fixed) - real * 128.0).abs() < 1.0,
                "{fixed} vs {real}"
            );
        }
        // Each reconstruction level lies in its own decision interval.
        for m in 1..8 {
            assert!(QUANT_LEVELS[m - 1] <= DQLN[m], "|I| = {m}");
            assert!(m == 7 || DQLN[m] < QUANT_LEVELS[m], "|I| = {m}");
        }
        // W (scale factor multipliers) and F (speed control), again times 16 for W.
        let w = [-0.75, 1.13, 2.56, 4.00, 7.00, 12.38, 22.19, 70.13];
        for (fixed, real) in W.iter().zip(w) {
            assert!(
                (f64::from(*fixed) - real * 16.0).abs() < 0.5,
                "{fixed} vs {real}"
            );
        }
        assert!(F.windows(2).all(|p| p[0] <= p[1]));
        // Sign and ones' complement magnitude of the codes.
        assert_eq!(
            (0..16).map(magnitude).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0]
        );
    }

    #[test]
    fn quantizer_and_inverse_agree() {
        // Each code's reconstruction re-quantizes to itself, at any step size.
        for y in [544, 1000, 2000, 5120] {
            for code in 0..16u8 {
                let dq = inverse_quantize(code, y);
                let d = if dq.neg { -dq.mag } else { dq.mag };
                let back = quantize(d, y);
                let expect = if magnitude(code) == 0 { 15 } else { code };
                assert_eq!(back, expect, "code {code} y {y}: dq {d}");
            }
        }
        // Zero difference is sent as negative zero.
        assert_eq!(quantize(0, 544), 15);
        assert_eq!(quantize(1_000_000 >> 6, 544), 7);
        assert_eq!(quantize(-(1_000_000 >> 6), 544), 8);
    }

    #[test]
    fn floating_point_conversion() {
        assert_eq!(Float::new(false, 0), Float::ZERO);
        assert_eq!(
            Float::new(false, 1),
            Float {
                neg: false,
                exp: 1,
                mant: 32
            }
        );
        assert_eq!(
            Float::new(true, 0x3FC0),
            Float {
                neg: true,
                exp: 14,
                mant: 63
            }
        );
        // The product comes out doubled (ACCUM halves the sum) and rounded up.
        assert_eq!(fmult(16_384, Float::new(false, 1000)), 2032);
        assert_eq!(fmult(-16_384, Float::new(false, 1000)), -2032);
        assert_eq!(fmult(-16_384, Float::new(true, 1000)), 2032);
        // A zero coefficient still contributes its rounding term, as in the Recommendation.
        assert_eq!(fmult(0, Float::ZERO), 0);
        assert_eq!(fmult(0, Float::new(false, 16_000)), 3);
    }

    #[test]
    fn tones_keep_frequency_and_snr() {
        // (frequency, SNR floor in dB). Measured: 36.3, 51.2 and 36.9 dB.
        for (hz, floor) in [(1000.0, 33.0), (300.0, 48.0), (3000.0, 34.0)] {
            let pcm = tone(hz, 8000.0, 8000);
            for packing in [Packing::Rfc3551, Packing::Aal2] {
                let out = round_trip(&pcm, packing);
                let (snr, _) = aligned_snr(&pcm, &out, 800);
                assert!(snr >= floor, "{hz} Hz: SNR {snr:.1} dB < {floor} dB");
                assert_eq!(dominant_hz(&out[800..]), hz);
            }
        }
    }

    #[test]
    fn noise_comes_through_without_delay() {
        // A tone cannot tell delays a period apart; noise can. Sum of four uniform draws,
        // so roughly Gaussian, at about -20 dBFS.
        let pcm = &reference_input(8000)[..8000];
        let out = round_trip(pcm, Packing::Rfc3551);
        let (snr, delay) = aligned_snr(pcm, &out, 800);
        assert_eq!(delay, 0);
        // Measured 19.1 dB.
        assert!(snr >= 16.0, "noise SNR {snr:.1} dB");
    }

    #[test]
    fn packing_orders_differ_only_in_nibble_order() {
        let pcm = tone(1000.0, 8000.0, 800);
        let mut rfc = vec![0u8; 400];
        let mut aal2 = vec![0u8; 400];
        G726Encoder::new().encode(&pcm, &mut rfc);
        G726Encoder::with_packing(Packing::Aal2).encode(&pcm, &mut aal2);
        assert!(rfc.iter().zip(&aal2).all(|(r, a)| *a == r.rotate_left(4)));
        // The first sample's code is in the low nibble for RFC 3551.
        let mut enc = G726Encoder::new();
        let first = enc.encode_sample(pcm[0]);
        let second = enc.encode_sample(pcm[1]);
        assert_eq!(rfc[0], first | second << 4);
    }

    #[test]
    fn silence_stays_quiet() {
        let out = round_trip(&[0i16; 8000], Packing::Rfc3551);
        assert!(
            out.iter().all(|v| v.abs() <= 8),
            "{:?}",
            out.iter().max_by_key(|v| v.abs())
        );
        let mut pcm = tone(1000.0, 20_000.0, 800);
        pcm.extend([0i16; 7200]);
        let out = round_trip(&pcm, Packing::Rfc3551);
        assert!(out[2400..].iter().all(|v| v.abs() <= 8));
        // And silence never produces an all-zero octet.
        let mut codes = [0u8; 4000];
        G726Encoder::new().encode(&[0i16; 8000], &mut codes);
        assert!(codes.iter().all(|c| *c != 0));
    }

    #[test]
    fn garbage_codes_decode_bounded_and_the_decoder_recovers() {
        let mut dec = G726Decoder::new();
        let mut out = vec![0i16; 512];
        let every: Vec<u8> = (0..=255).collect();
        assert_eq!(dec.decode(&every, &mut out), 512);
        for seed in 1..4 {
            let noise = pseudo_random_bytes(8000, seed);
            let mut out = vec![0i16; 16_000];
            assert_eq!(dec.decode(&noise, &mut out), 16_000);
        }
        for code in 0..=255u8 {
            let mut out = vec![0i16; 2000];
            dec.decode(&[code; 1000], &mut out);
        }
        // After garbage, a real stream takes over.
        let pcm = tone(1000.0, 8000.0, 16_000);
        let mut codes = vec![0u8; 8000];
        G726Encoder::new().encode(&pcm, &mut codes);
        let mut out = vec![0i16; 16_000];
        dec.decode(&codes, &mut out);
        assert_eq!(dominant_hz(&out[8000..]), 1000.0);
        let (snr, _) = aligned_snr(&pcm, &out, 8000);
        assert!(snr > 18.0, "SNR after garbage {snr:.1} dB");
    }

    #[test]
    fn extreme_input_does_not_overflow() {
        let square: Vec<i16> = (0..16_000)
            .map(|i| if (i / 3) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let noise: Vec<i16> = pseudo_random_bytes(32_000, 7)
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        for pcm in [square, noise] {
            assert_eq!(round_trip(&pcm, Packing::Aal2).len(), pcm.len());
        }
    }

    /// FNV-1a, to pin long streams in a few characters.
    fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// Integer-only test signal (so it is the same on every platform): `n` samples of
    /// noise, `n / 2` of a triangle wave, `n / 4` of silence.
    fn reference_input(n: usize) -> Vec<i16> {
        let noise = pseudo_random_bytes(4 * n, 11)
            .chunks_exact(4)
            .map(|b| b.iter().map(|v| (i32::from(*v) - 128) * 13).sum::<i32>() as i16)
            .collect::<Vec<_>>();
        let triangle = (0..n / 2).map(|i| (((i * 37) % 2000) as i16 - 1000) * 8);
        noise
            .into_iter()
            .chain(triangle)
            .chain(vec![0; n / 4])
            .collect()
    }

    #[test]
    fn matches_the_reference_implementation() {
        // Digests of the codes and decoded samples that spandsp's G.726 (which passes the ITU
        // test sequences) produces for the same input, RTP packing; ours matched it bit for bit.
        let pcm = reference_input(8000);
        let mut codes = vec![0u8; pcm.len() / 2];
        G726Encoder::new().encode(&pcm, &mut codes);
        assert_eq!(&codes[..8], &[199, 135, 135, 135, 187, 23, 85, 83]);
        assert_eq!(fnv1a(codes.iter().copied()), 0x52d2_6345_f6b5_2f83);
        let mut out = vec![0i16; pcm.len()];
        G726Decoder::new().decode(&codes, &mut out);
        assert_eq!(
            fnv1a(out.iter().flat_map(|s| s.to_le_bytes())),
            0x431e_3f2b_a6b8_75de
        );
    }

    #[test]
    fn deterministic_and_reset_restarts() {
        let pcm = tone(440.0, 12_000.0, 1600);
        let mut enc = G726Encoder::with_packing(Packing::Aal2);
        let mut a = vec![0u8; 800];
        let mut b = vec![0u8; 800];
        enc.encode(&pcm, &mut a);
        enc.reset();
        assert_eq!(enc, G726Encoder::with_packing(Packing::Aal2));
        enc.encode(&pcm, &mut b);
        assert_eq!(a, b);
        // Splitting the input does not change the stream.
        let mut c = vec![0u8; 800];
        let mut enc = G726Encoder::with_packing(Packing::Aal2);
        assert_eq!(enc.encode(&pcm[..301], &mut c), 150);
        enc.encode(&pcm[300..], &mut c[150..]);
        assert_eq!(a, c);

        let mut dec = G726Decoder::with_packing(Packing::Aal2);
        let mut x = vec![0i16; 1600];
        let mut y = vec![0i16; 1600];
        dec.decode(&a, &mut x);
        dec.reset();
        assert_eq!(dec.packing(), Packing::Aal2);
        dec.decode(&a, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn short_buffers_limit_the_work() {
        let mut enc = G726Encoder::new();
        let mut out = [0u8; 3];
        assert_eq!(enc.encode(&[0; 10], &mut out), 3);
        assert_eq!(enc.encode(&[0; 1], &mut out), 0);
        let mut dec = G726Decoder::new();
        let mut pcm = [0i16; 5];
        assert_eq!(dec.decode(&[0x77; 4], &mut pcm), 4);
        assert_eq!(dec.decode(&[], &mut pcm), 0);
    }
}
