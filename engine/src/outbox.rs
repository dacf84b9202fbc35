//! Messages a handler wants sent, collected during its call and submitted by the worker in one
//! batch at the end of the loop turn.

use crate::peer::{ConnId, Peer};

pub(crate) struct OutMsg {
    pub to: Peer,
    pub buf: Vec<u8>,
}

/// Buffers beyond this many are freed rather than pooled, so a burst does not pin memory forever.
const POOL_MAX: usize = 4096;
/// Buffers that grew beyond this are not pooled (one 64 KiB message should not make every
/// pooled buffer 64 KiB).
const POOLED_CAPACITY_MAX: usize = 16 * 1024;

#[derive(Default)]
pub struct Outbox {
    msgs: Vec<OutMsg>,
    closes: Vec<ConnId>,
    pool: Vec<Vec<u8>>,
}

impl Outbox {
    /// Queues `bytes` for `to`. UDP leaves from the socket bound to `to.local`; TCP uses
    /// `to.conn` while it is open, else a connection to `to.remote` (reused or opened on demand,
    /// RFC 3261 18.2.2).
    pub fn send(&mut self, to: Peer, bytes: &[u8]) {
        self.send_with(to, |buf| buf.extend_from_slice(bytes));
    }

    /// Like [`send`](Self::send), but the message is written straight into a pooled buffer.
    pub fn send_with(&mut self, to: Peer, fill: impl FnOnce(&mut Vec<u8>)) {
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        fill(&mut buf);
        self.msgs.push(OutMsg { to, buf });
    }

    /// Closes a TCP connection once what was queued on it has been written.
    pub fn close(&mut self, conn: ConnId) {
        self.closes.push(conn);
    }

    /// Messages queued so far in this turn.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty() && self.closes.is_empty()
    }

    pub(crate) fn mark(&self) -> (usize, usize) {
        (self.msgs.len(), self.closes.len())
    }

    /// Forgets what a panicking handler call queued: half-built answers are worse than none.
    pub(crate) fn rollback(&mut self, (msgs, closes): (usize, usize)) {
        while self.msgs.len() > msgs {
            if let Some(m) = self.msgs.pop() {
                self.recycle(m.buf);
            }
        }
        self.closes.truncate(closes);
    }

    /// Takes the queued messages; `spare` (empty) keeps its capacity for the next turn.
    pub(crate) fn take_msgs(&mut self, spare: &mut Vec<OutMsg>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut self.msgs, spare);
    }

    pub(crate) fn take_closes(&mut self, spare: &mut Vec<ConnId>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut self.closes, spare);
    }

    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < POOL_MAX && buf.capacity() <= POOLED_CAPACITY_MAX {
            self.pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn rollback_drops_only_later_messages() {
        let mut out = Outbox::default();
        let to = Peer::udp(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        );
        out.send(to, b"a");
        let mark = out.mark();
        out.send(to, b"b");
        out.rollback(mark);
        let mut msgs = Vec::new();
        out.take_msgs(&mut msgs);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].buf, b"a");
    }
}
