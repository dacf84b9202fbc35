//! Reception statistics of one RTP stream (RFC 3550 appendix A.1, A.3 and A.8): packets,
//! bytes, cumulative loss from the extended highest sequence number, and interarrival jitter.

/// Counters the relay keeps per direction; plain integers, updated per packet without
/// allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    /// Packets never seen: expected (from sequence numbers) minus received; reordered and
    /// duplicate packets can make it briefly negative, as in RFC 3550 A.3.
    pub lost: i64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8), scaled by 16 as the RFC's
    /// integer implementation keeps it; [`StreamStats::jitter`] gives timestamp units.
    jitter_q4: u32,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    /// Transit time (arrival in RTP units minus RTP timestamp) of the last packet.
    transit: Option<i64>,
    started: bool,
}

/// RFC 3550 A.1: a jump larger than this is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;

impl StreamStats {
    /// Records a packet of `bytes` with sequence `seq` and RTP timestamp `ts`, arrived at
    /// `arrival` (in the stream's clock units).
    pub fn record(&mut self, seq: u16, ts: u32, arrival: u64, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
            } else if (MAX_DROPOUT..=u16::MAX - 100).contains(&delta) {
                // A large jump: the sender restarted; count afresh from here.
                self.base_seq = u32::from(seq);
                self.max_seq = seq;
                self.cycles = 0;
                self.packets = 1;
            }
        }
        let expected =
            i64::from(self.cycles) + i64::from(self.max_seq) - i64::from(self.base_seq) + 1;
        self.lost = expected - self.packets as i64;
        let transit = arrival as i64 - i64::from(ts);
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs().min(1 << 24) as i64;
            // J += (|D| - J) / 16, with J kept in 1/16 units (RFC 3550 A.8).
            let j = i64::from(self.jitter_q4);
            self.jitter_q4 = (j + d - ((j + 8) >> 4)).clamp(0, i64::from(u32::MAX)) as u32;
        }
        self.transit = Some(transit);
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles + u32::from(self.max_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_across_wraparound() {
        let mut s = StreamStats::default();
        let mut seq = 65_530u16;
        for i in 0..20u64 {
            if i != 7 && i != 8 {
                s.record(seq, (i * 160) as u32, i * 160, 172);
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.packets, 18);
        assert_eq!(s.lost, 2);
        assert_eq!(s.bytes, 18 * 172);
        assert_eq!(s.extended_max(), 65_536 + 13);
    }

    #[test]
    fn jitter_follows_arrival_variation() {
        let mut steady = StreamStats::default();
        let mut shaky = StreamStats::default();
        for i in 0..500u64 {
            let ts = (i * 160) as u32;
            steady.record(i as u16, ts, i * 160, 172);
            let wobble = if i % 2 == 0 { 0 } else { 80 };
            shaky.record(i as u16, ts, i * 160 + wobble, 172);
        }
        assert_eq!(steady.jitter(), 0);
        // Alternating 80-unit deviations: |D| = 80 every packet, so J converges to 80.
        assert!((75..=80).contains(&shaky.jitter()), "{}", shaky.jitter());
    }

    #[test]
    fn reordering_and_duplicates_do_not_panic() {
        let mut s = StreamStats::default();
        for seq in [5u16, 7, 6, 6, 9, 8, 1, 40_000, 40_001] {
            s.record(seq, u32::from(seq) * 160, u64::from(seq) * 160, 10);
        }
        assert!(s.packets > 0);
    }
}
