//! Symmetric RTP latching (RFC 4961: send to where the peer sends from). A leg learns its peer
//! from the first packets; without NAT allowance only packets from the signalled IP address
//! are accepted (the port may differ); with it, any source is learned. A latched peer that
//! falls silent may be replaced by a new source (a NAT binding changed), never while it talks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latch {
    signalled: Option<SocketAddr>,
    allow_nat: bool,
    learned: Option<SocketAddr>,
    last_heard: Option<Instant>,
}

impl Latch {
    pub fn new(signalled: Option<SocketAddr>, allow_nat: bool) -> Latch {
        Latch {
            signalled,
            allow_nat,
            learned: None,
            last_heard: None,
        }
    }

    /// Whether a packet from `from` belongs to this leg; learns the peer if it may.
    pub fn accept(&mut self, from: SocketAddr, now: Instant, relatch_after: Duration) -> bool {
        if self.learned == Some(from) {
            self.last_heard = Some(now);
            return true;
        }
        let allowed = self.allow_nat || self.signalled.is_some_and(|s| s.ip() == from.ip());
        let silent = self
            .last_heard
            .is_none_or(|t| now.saturating_duration_since(t) >= relatch_after);
        if allowed && (self.learned.is_none() || silent) {
            self.learned = Some(from);
            self.last_heard = Some(now);
            return true;
        }
        false
    }

    /// Where to send to this leg: the learned source, else the signalled address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.learned.or(self.signalled)
    }

    pub fn learned(&self) -> Option<SocketAddr> {
        self.learned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_signalled_address_without_nat() {
        let t = Instant::now();
        let gap = Duration::from_secs(2);
        let mut l = Latch::new(Some(a("192.0.2.1:4000")), false);
        assert_eq!(l.destination(), Some(a("192.0.2.1:4000")));
        assert!(
            !l.accept(a("198.51.100.9:4000"), t, gap),
            "a stranger is refused"
        );
        assert!(
            l.accept(a("192.0.2.1:4002"), t, gap),
            "same IP, other port: symmetric"
        );
        assert_eq!(l.destination(), Some(a("192.0.2.1:4002")));
        assert!(!l.accept(a("192.0.2.1:4004"), t + Duration::from_millis(20), gap));
        assert!(
            l.accept(a("192.0.2.1:4004"), t + Duration::from_secs(3), gap),
            "silent peer replaced"
        );
    }

    #[test]
    fn anything_with_nat_but_never_while_the_peer_talks() {
        let t = Instant::now();
        let gap = Duration::from_secs(2);
        let mut l = Latch::new(Some(a("10.0.0.5:4000")), true);
        assert!(l.accept(a("203.0.113.7:61000"), t, gap));
        assert_eq!(l.destination(), Some(a("203.0.113.7:61000")));
        assert!(!l.accept(a("198.51.100.1:5000"), t + Duration::from_millis(500), gap));
        assert!(l.accept(a("203.0.113.7:61000"), t + Duration::from_secs(1), gap));
        assert!(!l.accept(a("198.51.100.1:5000"), t + Duration::from_secs(2), gap));
        assert!(l.accept(a("198.51.100.1:5000"), t + Duration::from_secs(4), gap));
    }

    #[test]
    fn unknown_peer_without_nat_accepts_nothing() {
        let mut l = Latch::new(None, false);
        assert!(!l.accept(a("192.0.2.1:1"), Instant::now(), Duration::ZERO));
        assert_eq!(l.destination(), None);
    }
}
