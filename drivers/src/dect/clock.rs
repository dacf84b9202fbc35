//! A base station's own time: DECT's 10 ms TDMA frames counted from the base's start and
//! stretched by its crystal's error, and the seeded generator of the simulation's randomness.

use std::time::{Duration, Instant};

/// One DECT TDMA frame (24 slots), the air interface's audio period.
pub const AIR_FRAME_NS: u64 = 10_000_000;

const PPM_SCALE: i128 = 1_000_000;

/// The air-frame clock of one base: frame `k` starts at `epoch + k * 10 ms / (1 + ppm/10^6)`,
/// each frame's instant computed from `k` alone so that rounding never accumulates into drift
/// the configuration did not ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseClock {
    epoch: Instant,
    ppm: i32,
}

impl BaseClock {
    /// `ppm` is clamped to ±100_000 so that the arithmetic below can never divide by zero or
    /// turn negative, whatever a caller passes; configuration validation keeps it far smaller.
    pub fn new(epoch: Instant, ppm: i32) -> BaseClock {
        BaseClock {
            epoch,
            ppm: ppm.clamp(-100_000, 100_000),
        }
    }

    pub fn ppm(&self) -> i32 {
        self.ppm
    }

    /// Nanoseconds from the epoch to the start of air frame `k`.
    fn offset_ns(&self, k: u64) -> u128 {
        let rate = (PPM_SCALE + i128::from(self.ppm)) as u128;
        u128::from(k) * u128::from(AIR_FRAME_NS) * PPM_SCALE as u128 / rate
    }

    /// When air frame `k` starts, `None` beyond what `Instant` can represent.
    pub fn frame_time(&self, k: u64) -> Option<Instant> {
        let ns = u64::try_from(self.offset_ns(k)).ok()?;
        self.epoch.checked_add(Duration::from_nanos(ns))
    }

    /// The first air frame starting strictly after `now`.
    pub fn frame_after(&self, now: Instant) -> u64 {
        if now < self.epoch {
            return 0;
        }
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        let rate = (PPM_SCALE + i128::from(self.ppm)) as u128;
        let estimate = elapsed * rate / (u128::from(AIR_FRAME_NS) * PPM_SCALE as u128);
        let mut k = u64::try_from(estimate).unwrap_or(u64::MAX / 2);
        // The estimate is off by at most one either way through the integer divisions.
        while k > 0 && self.offset_ns(k - 1) > elapsed {
            k -= 1;
        }
        while self.offset_ns(k) <= elapsed && k < u64::MAX / 2 {
            k += 1;
        }
        k
    }
}

/// SplitMix64: small, seedable and good enough for delays and clock offsets; the simulation
/// must replay identically from its seed, which rules out any system source of randomness.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `low..=high` (a small range, so the modulo bias does not matter here).
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = (high - low) as u64 + 1;
        low + (self.next_u64() % span) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_clock_ticks_every_ten_ms() {
        let t0 = Instant::now();
        let clock = BaseClock::new(t0, 0);
        assert_eq!(clock.frame_time(0), Some(t0));
        assert_eq!(clock.frame_time(100), Some(t0 + Duration::from_secs(1)));
        assert_eq!(clock.frame_after(t0), 1);
        assert_eq!(clock.frame_after(t0 + Duration::from_millis(10)), 2);
        assert_eq!(clock.frame_after(t0 + Duration::from_micros(9_999)), 1);
    }

    #[test]
    fn a_fast_clock_gains_frames() {
        let t0 = Instant::now();
        let fast = BaseClock::new(t0, 100);
        let slow = BaseClock::new(t0, -100);
        // 1000 s is 100_000 frames; 100 ppm of it is 10 frames either way.
        let later = t0 + Duration::from_secs(1000);
        assert_eq!(fast.frame_after(later), 100_011);
        assert_eq!(slow.frame_after(later), 99_991);
    }

    #[test]
    fn frame_after_is_consistent_with_frame_time() {
        let t0 = Instant::now();
        for ppm in [-100, -37, 0, 1, 50, 100] {
            let clock = BaseClock::new(t0, ppm);
            for ms in (0..5000).step_by(7) {
                let now = t0 + Duration::from_micros(ms * 1013);
                let k = clock.frame_after(now);
                assert!(clock.frame_time(k).expect("in range") > now);
                if k > 0 {
                    assert!(clock.frame_time(k - 1).expect("in range") <= now);
                }
            }
        }
    }

    #[test]
    fn before_the_epoch_is_frame_zero() {
        let t0 = Instant::now();
        let clock = BaseClock::new(t0 + Duration::from_secs(5), 0);
        assert_eq!(clock.frame_after(t0), 0);
    }

    #[test]
    fn prng_is_repeatable_and_in_range() {
        let mut a = Prng::new(7);
        let mut b = Prng::new(7);
        for _ in 0..1000 {
            let x = a.range(-50, 50);
            assert_eq!(x, b.range(-50, 50));
            assert!((-50..=50).contains(&x));
        }
        assert_eq!(a.range(3, 3), 3);
        assert_eq!(a.range(5, 1), 5);
    }
}
