//! The sounds a simulated subscriber or announcement machine puts on the line.

use std::collections::VecDeque;
use std::f64::consts::PI;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

const SAMPLE_RATE: u32 = 8000;

/// Peak of the exchange's tones, about -10 dBm0: G.711's overload point is +3.14 dBm0, so a
/// 0 dBm0 sine peaks near 22 800 in 16-bit linear, and -10 dB is a factor of 1/sqrt(10). Loud
/// enough to measure, far enough from clipping that a codec round trip keeps it a clean sine.
pub const TONE_AMPLITUDE: i16 = 7200;

/// The highest tone frequency: anything at or above half the sample rate would alias.
pub const MAX_TONE_HZ: u32 = SAMPLE_RATE / 2 - 1;

/// The longest echo delay, in frames (5 s), so that a configured delay cannot make the
/// exchange allocate without bound.
pub const MAX_ECHO_DELAY_FRAMES: u32 = 250;

/// How much unplayed audio an echo keeps beyond its delay, in frames, when the gateway sends
/// faster than it fetches: the oldest is dropped, as a real jitter buffer would.
const ECHO_BACKLOG_FRAMES: usize = 10;

/// A continuous sine, frame after frame.
#[derive(Clone, Debug)]
pub(crate) struct ToneGen {
    hz: u32,
    /// Position within one second: a whole number of Hz repeats exactly every 8000 samples,
    /// so wrapping here keeps the phase exact however long the call lasts.
    n: u32,
}

impl ToneGen {
    pub(crate) fn new(hz: u32) -> ToneGen {
        ToneGen {
            hz: hz.min(MAX_TONE_HZ),
            n: 0,
        }
    }

    pub(crate) fn frame(&mut self) -> Vec<i16> {
        let mut out = Vec::with_capacity(FRAME_SAMPLES);
        for _ in 0..FRAME_SAMPLES {
            let phase = 2.0 * PI * f64::from(self.hz) * f64::from(self.n) / f64::from(SAMPLE_RATE);
            out.push((f64::from(TONE_AMPLITUDE) * phase.sin()).round() as i16);
            self.n = (self.n + 1) % SAMPLE_RATE;
        }
        out
    }
}

/// Plays back what it hears, a fixed number of frames later.
#[derive(Clone, Debug)]
pub(crate) struct Echo {
    buffer: VecDeque<i16>,
    limit: usize,
}

impl Echo {
    pub(crate) fn new(delay_frames: u32) -> Echo {
        let delay = delay_frames.min(MAX_ECHO_DELAY_FRAMES) as usize * FRAME_SAMPLES;
        // The delay is a head start of silence: every sample heard queues behind it.
        let mut buffer = VecDeque::with_capacity(delay + FRAME_SAMPLES);
        buffer.resize(delay, 0);
        Echo {
            buffer,
            limit: delay + ECHO_BACKLOG_FRAMES * FRAME_SAMPLES,
        }
    }

    pub(crate) fn hear(&mut self, pcm: &[i16]) {
        self.buffer.extend(pcm.iter().copied());
        let excess = self.buffer.len().saturating_sub(self.limit);
        self.buffer.drain(..excess);
    }

    /// The next frame; silence fills in for what was not heard (the gateway sent nothing).
    pub(crate) fn frame(&mut self) -> Vec<i16> {
        (0..FRAME_SAMPLES)
            .map(|_| self.buffer.pop_front().unwrap_or(0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_is_continuous_across_frames() {
        let mut tone = ToneGen::new(1000);
        let a = tone.frame();
        let b = tone.frame();
        // 1000 Hz at 8 kHz repeats every 8 samples, so a frame boundary shows no seam.
        assert_eq!(a[152..160], b[0..8]);
        assert_eq!(a[0], 0);
        assert!(a.iter().all(|s| s.unsigned_abs() <= TONE_AMPLITUDE as u16));
        assert_eq!(a.iter().map(|s| s.unsigned_abs()).max(), Some(7200));
    }

    #[test]
    fn tone_above_nyquist_is_clamped() {
        let mut tone = ToneGen::new(u32::MAX);
        assert_eq!(tone.hz, MAX_TONE_HZ);
        assert_eq!(tone.frame().len(), FRAME_SAMPLES);
    }

    #[test]
    fn echo_delays_by_whole_frames_and_bounds_its_buffer() {
        let mut echo = Echo::new(2);
        let f1: Vec<i16> = (0..160).collect();
        let f2: Vec<i16> = (160..320).collect();
        echo.hear(&f1);
        echo.hear(&f2);
        assert_eq!(echo.frame(), vec![0; 160]);
        assert_eq!(echo.frame(), vec![0; 160]);
        assert_eq!(echo.frame(), f1);
        assert_eq!(echo.frame(), f2);
        assert_eq!(echo.frame(), vec![0; 160]);
        for _ in 0..1000 {
            echo.hear(&f1);
        }
        assert!(echo.buffer.len() <= echo.limit);
        let huge = Echo::new(u32::MAX);
        assert_eq!(
            huge.buffer.len(),
            MAX_ECHO_DELAY_FRAMES as usize * FRAME_SAMPLES
        );
    }
}
