//! Timer values (RFC 3261 section 17 and Table 4, RFC 6026 section 8) and the queue that holds
//! every armed timer of every transaction.
//!
//! The queue is a binary heap with lazy cancellation: re-arming or disarming a timer only
//! changes the sequence number its transaction remembers, and heap entries whose number is no
//! longer remembered are skipped when they come due. Arming is O(log n) and cancelling O(1), so
//! hundreds of thousands of live transactions stay cheap.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::TxId;

/// The protocol timers the transaction timers derive from (RFC 3261 section 17.1.1.1 and
/// Table 4). Values may be tuned to the network, as section 17.1.1.1 allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip time estimate: first retransmission interval, and 64*T1 bounds every
    /// transaction.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and INVITE final responses.
    pub t2: Duration,
    /// How long a message may stay in the network: how long the Confirmed and Completed states
    /// of timers I and K absorb stragglers.
    pub t4: Duration,
    /// How long an INVITE client transaction waits in Proceeding for a final response after the
    /// last provisional one. RFC 3261 defines no such bound for a UAC, only Timer C for proxies
    /// (section 16.6 step 11, "larger than 3 minutes"); without one a peer that rings forever
    /// would pin the transaction forever.
    pub c: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            // Above the 3 minutes of section 16.6, with the margin other stacks use.
            c: Duration::from_secs(185),
        }
    }
}

impl TimerConfig {
    /// A zero T1 would make a retransmission timer fire again in the very instant it fired, and
    /// T2 below T1 would shrink intervals instead of capping them.
    pub(crate) fn sanitized(mut self) -> Self {
        self.t1 = self.t1.max(Duration::from_millis(1));
        self.t2 = self.t2.max(self.t1);
        self
    }

    /// 64*T1: timers B, F, H, L, M and J on unreliable transports.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The initial duration of `timer` (Table 4). Timers that only absorb retransmissions are
    /// zero on reliable transports, which do not retransmit.
    pub(crate) fn duration(&self, timer: Timer, reliable: bool) -> Duration {
        match timer {
            Timer::A | Timer::E | Timer::G => self.t1,
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M | Timer::GiveUp => {
                self.transaction_timeout()
            }
            Timer::C => self.c,
            _ if reliable => Duration::ZERO,
            // "at least 32 seconds": as long as the server may retransmit its final response.
            Timer::D => self.transaction_timeout().max(Duration::from_secs(32)),
            Timer::I | Timer::K => self.t4,
            Timer::J => self.transaction_timeout(),
        }
    }
}

/// The timers of RFC 3261 Table 4 and RFC 6026, named as there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// INVITE request retransmission (client, Calling).
    A,
    /// INVITE transaction timeout (client, Calling).
    B,
    /// No final response for too long (client, Proceeding); see [`TimerConfig::c`].
    C,
    /// Wait for final response retransmissions (INVITE client, Completed).
    D,
    /// Non-INVITE request retransmission.
    E,
    /// Non-INVITE transaction timeout.
    F,
    /// INVITE final response retransmission (server, Completed).
    G,
    /// Wait for the ACK (INVITE server, Completed).
    H,
    /// Wait for ACK retransmissions (INVITE server, Confirmed).
    I,
    /// Wait for request retransmissions (non-INVITE server, Completed).
    J,
    /// Wait for response retransmissions (non-INVITE client, Completed).
    K,
    /// Wait for INVITE retransmissions after a 2xx (server, Accepted; RFC 6026).
    L,
    /// Wait for 2xx retransmissions and forked 2xx (client, Accepted; RFC 6026).
    M,
    /// An INVITE that was cancelled or hit Timer C is given up if no final response comes
    /// (RFC 3261 section 9.1: "after 64*T1 ... consider the INVITE transaction cancelled").
    GiveUp,
}

impl Timer {
    /// Timers that never run together share a slot, so a transaction remembers three.
    fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G => 0,
            Timer::C | Timer::GiveUp => 2,
            _ => 1,
        }
    }
}

/// The armed timers of one transaction: the sequence number of the heap entry that is current
/// for each slot.
#[derive(Debug, Default)]
pub(crate) struct Slots([Option<u64>; 3]);

impl Slots {
    /// Whether the entry is the current one for its slot; if so the slot is emptied, because
    /// the timer is firing.
    pub(crate) fn take(&mut self, timer: Timer, seq: u64) -> bool {
        let slot = &mut self.0[timer.slot()];
        if *slot == Some(seq) {
            *slot = None;
            true
        } else {
            false
        }
    }

    pub(crate) fn is_current(&self, timer: Timer, seq: u64) -> bool {
        self.0[timer.slot()] == Some(seq)
    }

    pub(crate) fn disarm(&mut self, timer: Timer) {
        self.0[timer.slot()] = None;
    }

    pub(crate) fn disarm_all(&mut self) {
        self.0 = [None; 3];
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) at: Instant,
    pub(crate) seq: u64,
    pub(crate) id: TxId,
    pub(crate) timer: Timer,
}

// Ordered by deadline, then by arming order so that timers due together fire as armed.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Entry {}

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
}

impl TimerQueue {
    /// Arms `timer` of transaction `id`, replacing whatever ran in its slot.
    pub(crate) fn arm(&mut self, slots: &mut Slots, id: TxId, timer: Timer, at: Instant) {
        self.next_seq += 1;
        let seq = self.next_seq;
        slots.0[timer.slot()] = Some(seq);
        self.heap.push(Reverse(Entry { at, seq, id, timer }));
    }

    /// The earliest entry; it may belong to a cancelled timer, which only costs a wake-up.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.0.at)
    }

    /// Removes and returns an entry due at `now`, current or not.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.heap.peek()?.0.at > now {
            return None;
        }
        self.heap.pop().map(|e| e.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.heap.retain(|e| keep(&e.0));
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::ClientTxId;

    #[test]
    fn table_4_values() {
        let c = TimerConfig::default();
        assert_eq!(c.duration(Timer::B, false), Duration::from_secs(32));
        assert_eq!(c.duration(Timer::D, false), Duration::from_secs(32));
        assert_eq!(c.duration(Timer::D, true), Duration::ZERO);
        assert_eq!(c.duration(Timer::I, false), Duration::from_secs(5));
        assert_eq!(c.duration(Timer::K, true), Duration::ZERO);
        assert_eq!(c.duration(Timer::J, false), Duration::from_secs(32));
        assert_eq!(c.duration(Timer::J, true), Duration::ZERO);
        // Timeouts do not depend on the transport.
        assert_eq!(c.duration(Timer::H, true), Duration::from_secs(32));
        assert_eq!(c.duration(Timer::L, true), Duration::from_secs(32));
    }

    #[test]
    fn sanitizing_keeps_intervals_growing() {
        let c = TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            ..TimerConfig::default()
        }
        .sanitized();
        assert!(c.t1 > Duration::ZERO);
        assert!(c.t2 >= c.t1);
    }

    #[test]
    fn rearming_makes_the_old_entry_stale() {
        let base = Instant::now();
        let id = TxId::Client(ClientTxId(1));
        let mut q = TimerQueue::default();
        let mut slots = Slots::default();
        q.arm(&mut slots, id, Timer::E, base + Duration::from_secs(1));
        q.arm(&mut slots, id, Timer::E, base + Duration::from_secs(2));
        q.arm(&mut slots, id, Timer::F, base + Duration::from_secs(2));
        let first = q.pop_due(base + Duration::from_secs(5)).expect("due");
        assert!(
            !slots.take(first.timer, first.seq),
            "replaced entry is stale"
        );
        let second = q.pop_due(base + Duration::from_secs(5)).expect("due");
        assert_eq!(
            second.timer,
            Timer::E,
            "equal deadlines fire in arming order"
        );
        assert!(slots.take(second.timer, second.seq));
        let third = q.pop_due(base + Duration::from_secs(5)).expect("due");
        assert!(slots.is_current(third.timer, third.seq));
        assert!(q.pop_due(base + Duration::from_secs(5)).is_none());
    }
}
