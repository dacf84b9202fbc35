//! Replay protection (RFC 7616 section 3.3 nc): for each nonce the highest nonce-count seen.
//! Shared by all workers, because a client's next request may arrive on another worker (a new
//! TCP connection, a NAT re-mapping), and a replay must fail wherever it lands.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Default)]
pub struct NonceCounts {
    seen: papaya::HashMap<Box<str>, AtomicU32>,
}

impl NonceCounts {
    pub fn new() -> NonceCounts {
        NonceCounts::default()
    }

    /// Records `nc` for `nonce`; `false` if it is not higher than one already seen (a replay or a
    /// reordered old request).
    pub fn record(&self, nonce: &str, nc: u32) -> bool {
        let map = self.seen.pin();
        let slot = match map.get(nonce) {
            Some(s) => s,
            None => map.get_or_insert_with(nonce.into(), || AtomicU32::new(0)),
        };
        slot.fetch_max(nc, Ordering::AcqRel) < nc
    }

    /// Forgets nonces issued before `issued_before_ms`: they are stale anyway, so a replay of
    /// them is refused by the nonce lifetime, and the table stays bounded.
    pub fn sweep(&self, issued_before_ms: u64) {
        self.seen
            .pin()
            .retain(|k, _| super::nonce::issued_ms(k).is_some_and(|t| t >= issued_before_ms));
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_rise() {
        let n = NonceCounts::new();
        assert!(n.record("0000000000000001aa", 1));
        assert!(!n.record("0000000000000001aa", 1), "replay");
        assert!(n.record("0000000000000001aa", 3));
        assert!(!n.record("0000000000000001aa", 2), "older");
        assert!(n.record("0000000000000002bb", 1), "other nonce");
        n.sweep(2);
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn concurrent_replays_succeed_once() {
        let n = std::sync::Arc::new(NonceCounts::new());
        let wins: u32 = (0..4)
            .map(|_| {
                let n = n.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| n.record("00000000000000ffnn", 7))
                        .count() as u32
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(wins, 1);
    }
}
