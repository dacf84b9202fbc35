//! Counters of a run and the one JSON line it ends with.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why a flow failed (besides a final status, which is counted per code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Timer F of a transaction or the flow's `--timeout` ran out.
    Timeout,
    /// A final response other than 2xx; 401/407 to credentials that were not `stale`.
    Status(u16),
    /// A 401/407 without a challenge we can answer.
    Challenge,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub offered: u64,
    pub ok: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    pub challenge_failures: u64,
    /// Responses that match no transaction in flight: duplicates of answered requests, answers
    /// to retransmissions, or late answers after a timeout. Absorbed, counted for diagnosis.
    pub stray: u64,
    /// Final statuses of failed flows, indexed by code (100..=699).
    by_status: Vec<u64>,
    pub latency: Histogram,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            by_status: vec![0; 700],
            ..Stats::default()
        }
    }

    pub fn succeed(&mut self, latency_us: u64) {
        self.ok += 1;
        self.latency.record(latency_us);
    }

    pub fn fail(&mut self, why: Failure) {
        self.failed += 1;
        match why {
            Failure::Timeout => self.timeouts += 1,
            Failure::Challenge => self.challenge_failures += 1,
            Failure::Status(code) => {
                if let Some(n) = self.by_status.get_mut(usize::from(code)) {
                    *n += 1;
                }
            }
        }
    }

    pub fn failed_by_status(&self) -> BTreeMap<String, u64> {
        self.by_status
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (code.to_string(), n))
            .collect()
    }

    pub fn failed_by_reason(&self) -> BTreeMap<&'static str, u64> {
        let status: u64 = self.by_status.iter().sum();
        [
            ("timeout", self.timeouts),
            ("status", status),
            ("challenge", self.challenge_failures),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// Log-linear histogram of microseconds: exact below 128 us, then 64 buckets per power of two
/// (under 1.6 % error), a few thousand counters whatever the run length.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: vec![0; LINEAR as usize + (64 - 7) * (1 << SUB_BITS)],
            count: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= 7
        let sub = (v >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        LINEAR as usize + ((exp - 7) as usize) * (1 << SUB_BITS) + sub as usize
    }

    /// Middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if (i as u64) < LINEAR {
            return i as u64;
        }
        let j = i - LINEAR as usize;
        let exp = (j >> SUB_BITS) as u32 + 7;
        let sub = (j & ((1 << SUB_BITS) - 1)) as u64;
        let low = ((1 << SUB_BITS) + sub) << (exp - SUB_BITS);
        low + (1 << (exp - SUB_BITS)) / 2
    }

    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.max = self.max.max(v);
    }

    /// The value at quantile `q` (0..=1), never above the largest recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

/// The final line. `rate` is the requested rate; `offered_rate` what the pacer achieved while
/// starting flows; `cpu_us_per_flow` is this process's own CPU (user + system) per offered flow.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub ok: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub elapsed_s: f64,
    pub rate: f64,
    pub offered: u64,
    pub timeouts: u64,
    pub failed_by_status: BTreeMap<String, u64>,
    pub failed_by_reason: BTreeMap<&'static str, u64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub target: String,
    pub users: usize,
    pub mode: &'static str,
    pub transport: &'static str,
    pub sockets: usize,
    pub offered_rate: f64,
    pub ok_per_s: f64,
    pub stray_responses: u64,
    pub cpu_s: f64,
    pub cpu_us_per_flow: f64,
    /// Flows still unfinished when a signal ended the run (0 otherwise).
    pub in_flight: u64,
    pub interrupted: bool,
}

pub struct RunInfo {
    pub target: String,
    pub users: usize,
    pub rate: f64,
    pub unregister: bool,
    pub sockets: usize,
    /// From the first flow to the last one finished.
    pub elapsed_s: f64,
    /// From the first flow to the last one started.
    pub offering_s: f64,
    pub cpu_s: f64,
    pub in_flight: u64,
    pub interrupted: bool,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Summary {
    pub fn new(s: &Stats, r: &RunInfo) -> Summary {
        let per_s = |n: u64, secs: f64| {
            if secs > 0.0 {
                round3(n as f64 / secs)
            } else {
                0.0
            }
        };
        Summary {
            ok: s.ok,
            failed: s.failed,
            retransmissions: s.retransmissions,
            elapsed_s: round3(r.elapsed_s),
            rate: r.rate,
            offered: s.offered,
            timeouts: s.timeouts,
            failed_by_status: s.failed_by_status(),
            failed_by_reason: s.failed_by_reason(),
            p50_ms: ms(s.latency.quantile(0.50)),
            p90_ms: ms(s.latency.quantile(0.90)),
            p99_ms: ms(s.latency.quantile(0.99)),
            max_ms: ms(s.latency.max()),
            target: r.target.clone(),
            users: r.users,
            mode: if r.unregister {
                "unregister"
            } else {
                "register"
            },
            transport: "udp",
            sockets: r.sockets,
            // One flow at t=0 plus (n-1) intervals: rate = (n-1)/span.
            offered_rate: per_s(s.offered.saturating_sub(1), r.offering_s),
            ok_per_s: per_s(s.ok, r.elapsed_s),
            stray_responses: s.stray,
            cpu_s: round3(r.cpu_s),
            cpu_us_per_flow: if s.offered > 0 {
                round3(r.cpu_s * 1e6 / s.offered as f64)
            } else {
                0.0
            },
            in_flight: r.in_flight,
            interrupted: r.interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got}");
        }
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn bucket_bounds_round_trip() {
        for v in [0u64, 127, 128, 129, 1000, 65_535, 1 << 40] {
            let mid = Histogram::value(Histogram::index(v));
            assert!(
                mid.abs_diff(v) as f64 <= (v as f64 / 64.0).max(0.0) + 1.0,
                "{v}"
            );
        }
    }

    #[test]
    fn failures_by_reason_and_status() {
        let mut s = Stats::new();
        s.fail(Failure::Timeout);
        s.fail(Failure::Status(403));
        s.fail(Failure::Status(403));
        s.fail(Failure::Challenge);
        assert_eq!(s.failed, 4);
        assert_eq!(s.failed_by_status().get("403"), Some(&2));
        assert_eq!(s.failed_by_reason().get("timeout"), Some(&1));
        assert_eq!(s.failed_by_reason().get("challenge"), Some(&1));
    }
}
