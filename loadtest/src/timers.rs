//! Timers as FIFO queues, one per fixed delay. Every entry is pushed at `now + delay` with a
//! monotonic `now`, so each queue is sorted by construction: arming and firing are O(1), with no
//! heap and no allocation once the queues have grown. Cancelling is lazy: an entry carries the
//! transaction id it was armed for and is skipped when stale.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: u64,
    pub slot: u32,
    pub tx: u32,
}

#[derive(Debug)]
pub struct Queue {
    delay: u64,
    q: VecDeque<Entry>,
}

impl Queue {
    pub fn new(delay_ns: u64) -> Queue {
        Queue {
            delay: delay_ns,
            q: VecDeque::new(),
        }
    }

    pub fn arm(&mut self, now: u64, slot: u32, tx: u32) {
        self.q.push_back(Entry {
            at: now + self.delay,
            slot,
            tx,
        });
    }

    /// The oldest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<Entry> {
        match self.q.front() {
            Some(e) if e.at <= now => self.q.pop_front(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_when_due() {
        let mut q = Queue::new(500);
        q.arm(0, 1, 7);
        q.arm(10, 2, 8);
        assert_eq!(q.pop_due(499), None);
        assert_eq!(q.pop_due(600).map(|e| e.slot), Some(1));
        assert_eq!(q.pop_due(600).map(|e| (e.slot, e.tx)), Some((2, 8)));
        assert_eq!(q.pop_due(u64::MAX), None);
    }
}
