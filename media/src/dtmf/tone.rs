//! In-band DTMF generation: the two sine tones of a key, summed, for a leg that cannot carry
//! RFC 4733 events. A generator is a few floats of state and produces any number of samples
//! per call without allocating.

use std::f32::consts::TAU;

/// The level of a full-scale sine in u-law (G.711).
const FULL_SCALE_DBM0: f32 = 3.17;

/// Generates one key's tone at `rate` Hz, continuing phase across calls.
#[derive(Clone, Copy, Debug)]
pub struct ToneGenerator {
    step: (f32, f32),
    phase: (f32, f32),
    amplitude: f32,
}

impl ToneGenerator {
    /// `level_dbm0`: power of each tone (Q.23 sends about -7 to -10 dBm0 per tone).
    pub fn new(event: u8, rate: u32, level_dbm0: f32) -> Option<ToneGenerator> {
        let (lo, hi) = super::frequencies(event)?;
        // A full-scale sine is +3.17 dBm0 in u-law (G.711; A-law's is 3.14), so each tone's
        // amplitude is full scale * 10^((level - 3.17) / 20).
        let amplitude = 32_767.0 * 10f32.powf((level_dbm0 - FULL_SCALE_DBM0) / 20.0);
        Some(ToneGenerator {
            step: (TAU * lo / rate as f32, TAU * hi / rate as f32),
            phase: (0.0, 0.0),
            amplitude,
        })
    }

    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            let v = self.amplitude * (self.phase.0.sin() + self.phase.1.sin());
            *s = v.clamp(-32_768.0, 32_767.0) as i16;
            self.phase.0 = (self.phase.0 + self.step.0) % TAU;
            self.phase.1 = (self.phase.1 + self.step.1) % TAU;
        }
    }
}
