//! Test signals and measurements shared by the codec tests: tones, aligned SNR, Goertzel power,
//! the dominant frequency, and a repeatable byte stream.

pub fn tone(hz: f64, amplitude: f64, n: usize, rate: f64) -> Vec<i16> {
    (0..n)
        .map(|i| (amplitude * (std::f64::consts::TAU * hz * i as f64 / rate).sin()) as i16)
        .collect()
}

/// Best SNR (dB) of `out` against `reference` over codec delays 0..64 samples, skipping the
/// first `skip` samples while the adaptation settles. Returns (snr, delay).
pub fn aligned_snr(reference: &[i16], out: &[i16], skip: usize) -> (f64, usize) {
    let mut best = (f64::NEG_INFINITY, 0);
    for delay in 0..64 {
        let (mut s, mut n) = (0f64, 0f64);
        for i in skip..reference.len() - 64 {
            let r = f64::from(reference[i]);
            s += r * r;
            n += (r - f64::from(out[i + delay])).powi(2);
        }
        let snr = 10.0 * (s / n.max(1e-9)).log10();
        if snr > best.0 {
            best = (snr, delay);
        }
    }
    best
}

/// Goertzel power of `x` at `hz`.
pub fn goertzel(x: &[i16], hz: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * hz / rate).cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for v in x {
        let s0 = f64::from(*v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequency of `x` on a 100 Hz grid below the Nyquist frequency.
pub fn dominant_hz(x: &[i16], rate: f64) -> f64 {
    (1..(rate / 200.0) as u32)
        .map(|k| f64::from(k) * 100.0)
        .map(|hz| (hz, goertzel(x, hz, rate)))
        .fold((0.0, f64::NEG_INFINITY), |best, c| {
            if c.1 > best.1 {
                c
            } else {
                best
            }
        })
        .0
}

/// xorshift, so the "random" streams are the same on every run.
pub fn pseudo_random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Best SNR of `out` against a clean tone of `hz` at `rate`, over delays and phases.
pub fn tone_snr(out: &[i16], hz: f64, rate: u32) -> f64 {
    let skip = out.len() / 4;
    let seg = &out[skip..];
    // Fit a*sin + b*cos at the expected frequency: the residual is noise + distortion.
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &y) in seg.iter().enumerate() {
        let (s, c) = ((w * i as f64).sin(), (w * i as f64).cos());
        let y = f64::from(y);
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += y * s;
        yc += y * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    let (mut sig, mut noise) = (0.0, 0.0);
    for (i, &y) in seg.iter().enumerate() {
        let fit = a * (w * i as f64).sin() + b * (w * i as f64).cos();
        sig += fit * fit;
        noise += (f64::from(y) - fit).powi(2);
    }
    10.0 * (sig / noise.max(1e-9)).log10()
}
