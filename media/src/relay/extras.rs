//! Packets a decoding path produced beyond the one sent from the receive buffer: a fixed ring
//! of packet-sized slots, allocated with the relay, so queuing never allocates. When it is full
//! the packet is dropped and counted (the engine drains it after every packet, so it only
//! fills if a burst of re-framed output exceeds [`SLOTS`] at once).

use std::net::SocketAddr;

use super::audio::OUT_SIZE;

const SLOTS: usize = 64;

pub struct Extras {
    data: Box<[[u8; OUT_SIZE]]>,
    meta: [(u16, Option<SocketAddr>, usize); SLOTS],
    head: usize,
    count: usize,
    pub dropped: u64,
}

impl Extras {
    pub fn new() -> Extras {
        Extras {
            data: vec![[0u8; OUT_SIZE]; SLOTS].into_boxed_slice(),
            meta: [(0, None, 0); SLOTS],
            head: 0,
            count: 0,
            dropped: 0,
        }
    }

    pub fn push(&mut self, from_port: u16, to: SocketAddr, packet: &[u8]) {
        if self.count == SLOTS || packet.len() > OUT_SIZE {
            self.dropped += 1;
            return;
        }
        let i = (self.head + self.count) % SLOTS;
        self.data[i][..packet.len()].copy_from_slice(packet);
        self.meta[i] = (from_port, Some(to), packet.len());
        self.count += 1;
    }

    /// The oldest queued packet, copied into `out` (truncated to it).
    pub fn pop(&mut self, out: &mut [u8]) -> Option<(u16, SocketAddr, usize)> {
        if self.count == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % SLOTS;
        self.count -= 1;
        let (port, to, len) = self.meta[i];
        let n = len.min(out.len());
        out[..n].copy_from_slice(&self.data[i][..n]);
        Some((port, to?, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_bounded_and_counted() {
        let mut e = Extras::new();
        let to: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        for i in 0..SLOTS + 3 {
            e.push(30000, to, &[i as u8; 20]);
        }
        assert_eq!(e.dropped, 3);
        let mut out = [0u8; 1500];
        for i in 0..SLOTS {
            assert_eq!(e.pop(&mut out), Some((30000, to, 20)));
            assert_eq!(out[0], i as u8);
        }
        assert_eq!(e.pop(&mut out), None);
        e.push(30000, to, &[0u8; OUT_SIZE + 1]);
        assert_eq!(e.dropped, 4);
    }
}
