//! RTP/RTCP port pairs from the configured range (`media.rtp_ports`): RTP on an even port, RTCP
//! on the next one (RFC 3550 section 11). Allocation rotates through the range so a port just
//! freed is not reused at once (late packets of the old call must not reach the new one).

/// A range of even RTP ports, each with RTCP on port + 1.
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    pairs: usize,
    used: Vec<bool>,
    next: usize,
    in_use: usize,
    /// Allocations and frees since the driver last looked: it opens and closes sockets.
    changes: Vec<PortChange>,
}

/// A pair the driver must open or close sockets for (RTP on `.0`, RTCP on `.0 + 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortChange {
    Opened(u16),
    Closed(u16),
}

impl PortPool {
    /// Pairs in `first..=last`; `first` is rounded up to even.
    pub fn new(first: u16, last: u16) -> PortPool {
        let first = first + (first & 1);
        let pairs = if last > first {
            usize::from((last - first).div_ceil(2))
        } else {
            0
        };
        PortPool {
            first,
            pairs,
            used: vec![false; pairs],
            next: 0,
            in_use: 0,
            changes: Vec::new(),
        }
    }

    /// A free pair's RTP port, or `None` when the range is exhausted.
    pub fn allocate(&mut self) -> Option<u16> {
        for _ in 0..self.pairs {
            let i = self.next;
            self.next = (self.next + 1) % self.pairs;
            if !self.used[i] {
                self.used[i] = true;
                self.in_use += 1;
                let port = self.first + 2 * i as u16;
                self.changes.push(PortChange::Opened(port));
                return Some(port);
            }
        }
        None
    }

    /// Returns the pair whose RTP port is `rtp`.
    pub fn free(&mut self, rtp: u16) {
        if rtp < self.first || !(rtp - self.first).is_multiple_of(2) {
            return;
        }
        let i = usize::from((rtp - self.first) / 2);
        if let Some(u) = self.used.get_mut(i) {
            if *u {
                *u = false;
                self.in_use -= 1;
                self.changes.push(PortChange::Closed(rtp));
            }
        }
    }

    /// The pairs opened and closed since the last call, in order.
    pub fn drain_changes(&mut self) -> std::vec::Drain<'_, PortChange> {
        self.changes.drain(..)
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    pub fn capacity(&self) -> usize {
        self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_pairs_rotating_and_exhaustion() {
        let mut p = PortPool::new(30001, 30008);
        assert_eq!(p.capacity(), 3);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        let c = p.allocate().unwrap();
        assert_eq!((a, b, c), (30002, 30004, 30006));
        assert_eq!(p.allocate(), None);
        p.free(b);
        p.free(b);
        p.free(12345);
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.allocate(), Some(30004));
        let changes: Vec<PortChange> = p.drain_changes().collect();
        assert_eq!(changes.len(), 5);
        assert_eq!(changes[3], PortChange::Closed(30004));
        assert_eq!(p.drain_changes().count(), 0);
    }
}
