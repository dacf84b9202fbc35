//! G.711 (ITU-T G.711): A-law and u-law companding, and the direct A-law <-> u-law conversion a
//! transcoding relay uses so that PCMA <-> PCMU never goes through linear samples.
//!
//! Every table is computed at compile time from the standard's segment rules.

/// u-law code -> 16-bit linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode(i as u8);
        i += 1;
    }
    t
};

/// A-law code -> 16-bit linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode(i as u8);
        i += 1;
    }
    t
};

/// u-law code -> the A-law code of the same level.
pub static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_encode(ulaw_decode(i as u8));
        i += 1;
    }
    t
};

/// A-law code -> the u-law code of the same level.
pub static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_encode(alaw_decode(i as u8));
        i += 1;
    }
    t
};

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

/// floor(log2(v)) for 1 <= v <= 255 (0 for 0 and 1).
const fn segment(v: i32) -> i32 {
    let mut s = 0;
    let mut v = v >> 1;
    while v > 0 {
        s += 1;
        v >>= 1;
    }
    s
}

pub const fn ulaw_encode(sample: i16) -> u8 {
    let mut x = sample as i32;
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    if x > ULAW_CLIP {
        x = ULAW_CLIP;
    }
    x += ULAW_BIAS;
    let exponent = segment(x >> 7);
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

pub const fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

pub const fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits; the sign bit set means positive.
    let mut x = (sample as i32) >> 3;
    let mask = if x >= 0 {
        0xD5
    } else {
        x = -x - 1;
        0x55
    };
    if x > 0xFFF {
        return (0x7F ^ mask) as u8;
    }
    let seg = if x < 0x20 { 0 } else { segment(x >> 4) };
    let mantissa = if seg < 2 {
        (x >> 1) & 0x0F
    } else {
        (x >> seg) & 0x0F
    };
    (((seg << 4) | mantissa) ^ mask) as u8
}

pub const fn alaw_decode(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let exponent = (a >> 4) & 0x07;
    let mantissa = a & 0x0F;
    let mut magnitude = (mantissa << 4) + 8;
    if exponent != 0 {
        magnitude = (magnitude + 0x100) << (exponent - 1);
    }
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// u-law payload -> A-law payload in place: the transcoding step of a PCMU <-> PCMA call,
/// one table lookup per byte on the packet's own buffer.
pub fn ulaw_to_alaw_in_place(payload: &mut [u8]) {
    for b in payload {
        *b = ULAW_TO_ALAW[*b as usize];
    }
}

/// A-law payload -> u-law payload in place.
pub fn alaw_to_ulaw_in_place(payload: &mut [u8]) {
    for b in payload {
        *b = ALAW_TO_ULAW[*b as usize];
    }
}

pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) {
    for (o, s) in out.iter_mut().zip(pcm) {
        *o = ulaw_encode(*s);
    }
}

pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) {
    for (o, s) in out.iter_mut().zip(pcm) {
        *o = alaw_encode(*s);
    }
}

pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) {
    for (o, c) in out.iter_mut().zip(codes) {
        *o = ULAW_TO_LINEAR[*c as usize];
    }
}

pub fn decode_alaw(codes: &[u8], out: &mut [i16]) {
    for (o, c) in out.iter_mut().zip(codes) {
        *o = ALAW_TO_LINEAR[*c as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signal-to-noise ratio of `out` against `reference`, in dB.
    fn snr(reference: &[i16], out: &[i16]) -> f64 {
        let (mut s, mut n) = (0f64, 0f64);
        for (r, o) in reference.iter().zip(out) {
            s += f64::from(*r).powi(2);
            n += (f64::from(*r) - f64::from(*o)).powi(2);
        }
        10.0 * (s / n.max(1e-9)).log10()
    }

    fn tone(hz: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn known_codes() {
        // Silence and full scale of both laws (G.711 tables).
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ULAW_TO_LINEAR[0xFF], 0);
        assert_eq!(ULAW_TO_LINEAR[0x00], -32124);
        assert_eq!(ULAW_TO_LINEAR[0x80], 32124);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ALAW_TO_LINEAR[0xD5], 8);
        assert_eq!(ALAW_TO_LINEAR[0xAA], 32256);
        assert_eq!(ALAW_TO_LINEAR[0x2A], -32256);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for c in 0..=255u8 {
            assert_eq!(
                ulaw_encode(ulaw_decode(c)),
                c | if c == 0x7F { 0x80 } else { 0 },
                "u-law {c:#x}"
            );
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#x}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut last = i16::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let (u, a) = (
                ULAW_TO_LINEAR[ulaw_encode(x) as usize],
                ALAW_TO_LINEAR[alaw_encode(x) as usize],
            );
            assert!(
                (i32::from(u) - i32::from(x)).abs() <= 1024,
                "u-law error at {x}"
            );
            assert!(
                (i32::from(a) - i32::from(x)).abs() <= 1024,
                "A-law error at {x}"
            );
            assert!(u >= last || x == i16::MIN);
            last = u;
        }
    }

    #[test]
    fn tones_keep_their_snr_through_each_law_and_across() {
        let pcm = tone(1000.0, 10_000.0, 8000);
        let mut codes = vec![0u8; pcm.len()];
        let mut out = vec![0i16; pcm.len()];
        encode_ulaw(&pcm, &mut codes);
        decode_ulaw(&codes, &mut out);
        assert!(snr(&pcm, &out) > 35.0, "u-law {}", snr(&pcm, &out));
        ulaw_to_alaw_in_place(&mut codes);
        decode_alaw(&codes, &mut out);
        assert!(snr(&pcm, &out) > 33.0, "u-law -> A-law {}", snr(&pcm, &out));
        encode_alaw(&pcm, &mut codes);
        decode_alaw(&codes, &mut out);
        assert!(snr(&pcm, &out) > 35.0, "A-law {}", snr(&pcm, &out));
        alaw_to_ulaw_in_place(&mut codes);
        decode_ulaw(&codes, &mut out);
        assert!(snr(&pcm, &out) > 33.0, "A-law -> u-law {}", snr(&pcm, &out));
    }

    #[test]
    fn repeated_transcoding_is_stable() {
        for c in 0..=255u8 {
            let a = ULAW_TO_ALAW[c as usize];
            let u = ALAW_TO_ULAW[a as usize];
            assert_eq!(
                ULAW_TO_ALAW[u as usize], a,
                "u {c:#x} -> a -> u -> a drifts"
            );
        }
    }
}
