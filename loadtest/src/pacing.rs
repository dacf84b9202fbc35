//! Open-loop deadline pacing: flow `i` is due at `i / rate` seconds after the start, whatever
//! the server answers. Deriving each deadline from the start (not from the previous send) keeps
//! the long-run rate exact however late the loop wakes: a late loop starts the backlog at once.

#[derive(Debug)]
pub struct Pacer {
    ns_per_flow: f64,
    count: u64,
    started: u64,
}

impl Pacer {
    pub fn new(rate: f64, count: u64) -> Pacer {
        Pacer {
            ns_per_flow: 1e9 / rate,
            count,
            started: 0,
        }
    }

    /// Deadline of flow `i`, in ns since the start.
    fn deadline(&self, i: u64) -> u64 {
        (i as f64 * self.ns_per_flow) as u64
    }

    /// How many flows are due at `now_ns` and not started yet, at most `budget`; they count as
    /// started once returned.
    pub fn take_due(&mut self, now_ns: u64, budget: u64) -> u64 {
        let mut n = 0;
        while n < budget && self.started < self.count && self.deadline(self.started) <= now_ns {
            self.started += 1;
            n += 1;
        }
        n
    }

    /// When the next flow is due; `None` once all are started.
    pub fn next_deadline(&self) -> Option<u64> {
        (self.started < self.count).then(|| self.deadline(self.started))
    }

    #[cfg(test)]
    pub fn started(&self) -> u64 {
        self.started
    }

    pub fn done(&self) -> bool {
        self.started >= self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_rate_over_time() {
        let mut p = Pacer::new(50_000.0, 1_000_000);
        // Waking every 1.3 ms for 2 s starts exactly rate*t (+1 for the flow due at t=0).
        let mut t = 0;
        while t <= 2_000_000_000 {
            p.take_due(t, u64::MAX);
            t += 1_300_000;
        }
        p.take_due(2_000_000_000, u64::MAX);
        assert_eq!(p.started(), 100_001);
        assert_eq!(p.next_deadline(), Some(2_000_020_000));
    }

    #[test]
    fn budget_and_count_bound_each_turn() {
        let mut p = Pacer::new(1000.0, 10);
        assert_eq!(p.take_due(1_000_000_000, 4), 4);
        assert_eq!(p.take_due(1_000_000_000, u64::MAX), 6);
        assert!(p.done());
        assert_eq!(p.next_deadline(), None);
    }
}
