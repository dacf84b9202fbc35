//! In-band DTMF detection with the Goertzel algorithm over 8 Goertzel filters (the four row
//! and four column frequencies), in blocks of about 13 ms. A key is reported when one row and
//! one column tone dominate for two consecutive blocks (Q.24 asks for at least 40 ms of tone
//! and tolerates -8/+4 dB twist), and released after two blocks without it. Fixed state, no
//! allocation.

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];

/// Detector output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtmf {
    /// A key went down (RFC 4733 event number).
    Pressed(u8),
    Released(u8),
}

pub struct Detector {
    coeffs: [f32; 8],
    state: [(f32, f32); 8],
    block: usize,
    filled: usize,
    energy: f32,
    candidate: Option<u8>,
    seen: u8,
    down: Option<u8>,
    missing: u8,
}

impl Detector {
    pub fn new(rate: u32) -> Detector {
        let block = (rate as usize * 13 / 1000).max(64);
        let mut coeffs = [0f32; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            let k = (block as f32 * f / rate as f32).round();
            *c = 2.0 * (std::f32::consts::TAU * k / block as f32).cos();
        }
        Detector {
            coeffs,
            state: [(0.0, 0.0); 8],
            block,
            filled: 0,
            energy: 0.0,
            candidate: None,
            seen: 0,
            down: None,
            missing: 0,
        }
    }

    /// Feeds samples; calls `on` for each key press and release found.
    pub fn feed(&mut self, samples: &[i16], mut on: impl FnMut(Dtmf)) {
        for &s in samples {
            let x = f32::from(s);
            self.energy += x * x;
            for (st, c) in self.state.iter_mut().zip(self.coeffs) {
                let s0 = x + c * st.0 - st.1;
                st.1 = st.0;
                st.0 = s0;
            }
            self.filled += 1;
            if self.filled == self.block {
                let key = self.decide();
                self.track(key, &mut on);
                self.state = [(0.0, 0.0); 8];
                self.filled = 0;
                self.energy = 0.0;
            }
        }
    }

    fn decide(&self) -> Option<u8> {
        let mut power = [0f32; 8];
        for (p, (st, c)) in power.iter_mut().zip(self.state.iter().zip(self.coeffs)) {
            *p = st.0 * st.0 + st.1 * st.1 - c * st.0 * st.1;
        }
        let best = |range: std::ops::Range<usize>| {
            range
                .map(|i| (i, power[i]))
                .fold((0, -1.0f32), |a, b| if b.1 > a.1 { b } else { a })
        };
        let (r, rp) = best(0..4);
        let (c, cp) = best(4..8);
        // Goertzel power of a sine of amplitude A over N samples is about (A N / 2)^2; the
        // block's energy is A^2 N / 2 per tone. Both tones together must carry most of it.
        let n = self.block as f32;
        let tone_energy = 2.0 * (rp + cp) / n;
        if self.energy < n * 1.0e4 || tone_energy < 0.6 * self.energy {
            return None;
        }
        // Twist within about 8 dB, and each winner well above the runner-up in its group.
        if rp > 6.3 * cp || cp > 6.3 * rp {
            return None;
        }
        let second = |range: std::ops::Range<usize>, win: usize| {
            range
                .filter(|&i| i != win)
                .map(|i| power[i])
                .fold(0f32, f32::max)
        };
        if second(0..4, r) * 6.0 > rp || second(4..8, c) * 6.0 > cp {
            return None;
        }
        Some(KEYPAD[r][c - 4])
    }

    fn track(&mut self, key: Option<u8>, on: &mut impl FnMut(Dtmf)) {
        if key.is_some() && key == self.candidate {
            self.seen = self.seen.saturating_add(1);
        } else {
            self.candidate = key;
            self.seen = u8::from(key.is_some());
        }
        match (self.down, key) {
            (None, Some(k)) if self.seen >= 2 => {
                self.down = Some(k);
                self.missing = 0;
                on(Dtmf::Pressed(k));
            }
            (Some(d), k) if k != Some(d) => {
                self.missing += 1;
                if self.missing >= 2 {
                    self.down = None;
                    on(Dtmf::Released(d));
                }
            }
            (Some(_), _) => self.missing = 0,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{event_of, tone::ToneGenerator};
    use super::*;

    fn detect(rate: u32, keys: &str, tone_ms: usize, gap_ms: usize, noise: i16) -> Vec<u8> {
        let mut d = Detector::new(rate);
        let mut found = Vec::new();
        let mut seed = 12345u32;
        let mut buf = vec![0i16; rate as usize * tone_ms / 1000];
        let mut gap = vec![0i16; rate as usize * gap_ms / 1000];
        for k in keys.chars() {
            let mut g = ToneGenerator::new(event_of(k).unwrap(), rate, -8.0).unwrap();
            g.fill(&mut buf);
            for s in buf.iter_mut().chain(gap.iter_mut()) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *s = s.saturating_add(((seed >> 16) as i16) % noise.max(1));
            }
            d.feed(&buf, |e| {
                if let Dtmf::Pressed(k) = e {
                    found.push(k)
                }
            });
            d.feed(&gap, |_| {});
            gap.iter_mut().for_each(|s| *s = 0);
        }
        found
    }

    #[test]
    fn detects_every_key_at_8_and_16_khz() {
        let all = "0123456789*#ABCD";
        let expect: Vec<u8> = all.chars().map(|c| event_of(c).unwrap()).collect();
        assert_eq!(detect(8000, all, 60, 60, 300), expect);
        assert_eq!(detect(16000, all, 60, 60, 300), expect);
    }

    #[test]
    fn speech_like_noise_and_short_blips_are_not_keys() {
        let mut d = Detector::new(8000);
        let mut count = 0;
        let mut seed = 7u32;
        let noise: Vec<i16> = (0..8000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((seed >> 16) as i16) / 2
            })
            .collect();
        d.feed(&noise, |_| count += 1);
        assert_eq!(count, 0, "white noise");
        assert!(
            detect(8000, "5", 15, 60, 1).is_empty(),
            "a 15 ms blip is not a key"
        );
    }
}
