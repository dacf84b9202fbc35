//! The exchange's only source of chance.

/// SplitMix64 (Steele, Lea and Flood, 2014). Chosen over a crate because the simulation needs
/// nothing more than reproducible, well-spread numbers from any seed (zero included), and a
/// self-contained generator keeps a seed's meaning stable across dependency upgrades.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

/// The golden-ratio increment of SplitMix64: odd, so the state walks through all 2^64 values.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator for one of many independent streams (one per call) under one seed, so that
    /// one call's draws do not shift when another call is added or removed.
    pub(crate) fn stream(seed: u64, index: u64) -> SplitMix64 {
        let mut mixer = SplitMix64::new(seed ^ index.wrapping_mul(GAMMA).rotate_left(29));
        SplitMix64::new(mixer.next_u64() ^ index)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi` (just `lo` when the range is empty or reversed).
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            // The full u64 range: every output is already in it.
            None => self.next_u64(),
            // Multiply-and-shift instead of `%`: no division, and less bias for wide spans.
            Some(span) => lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_seeds_differ() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = SplitMix64::new(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn between_stays_in_range() {
        let mut r = SplitMix64::new(0);
        for _ in 0..10_000 {
            let v = r.between(100, 600);
            assert!((100..=600).contains(&v));
        }
        assert_eq!(r.between(5, 5), 5);
        assert_eq!(r.between(9, 3), 9);
        let _ = r.between(0, u64::MAX);
    }

    #[test]
    fn between_covers_the_range() {
        let mut r = SplitMix64::new(42);
        let mut seen = [false; 6];
        for _ in 0..1000 {
            seen[r.between(0, 5) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn streams_are_independent_of_each_other() {
        let first: Vec<u64> = (0..4)
            .map(|i| SplitMix64::stream(1, i).next_u64())
            .collect();
        let mut sorted = first.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        assert_eq!(
            SplitMix64::stream(1, 3).next_u64(),
            SplitMix64::stream(1, 3).next_u64()
        );
        assert_ne!(
            SplitMix64::stream(1, 3).next_u64(),
            SplitMix64::stream(2, 3).next_u64()
        );
    }
}
