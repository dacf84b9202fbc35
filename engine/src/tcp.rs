//! TCP connections of one worker, independent of the backend: the connection table, the read
//! buffer with SIP framing (RFC 3261 18.3, RFC 5626 keep-alives) and the write queue.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mgw_core::sip::framing::{frame, Frame};
use socket2::Socket;

use crate::config::Transport;
use crate::handler::{App, Handler};
use crate::peer::{ConnId, Peer, MAX_SLOTS};
use crate::stats::Counters;

/// A peer that stops reading cannot make us buffer without bound; messages beyond this are
/// dropped (and counted as send errors).
const WRITE_QUEUE_MAX: usize = 4 * 1024 * 1024;
/// Answer to a double-CRLF keep-alive ping (RFC 5626 section 4.4.1).
const PONG: &[u8] = b"\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Connecting,
    Open,
    /// Closed for the handler; io_uring waits here until the kernel has finished every
    /// operation that references the socket, then the slot is released.
    Draining,
}

pub(crate) struct Conn {
    pub socket: Socket,
    pub peer: Peer,
    pub state: State,
    rbuf: Vec<u8>,
    pub wq: VecDeque<Vec<u8>>,
    wq_bytes: usize,
    /// Bytes of the front buffer already written (epoll; io_uring keeps this in the send op).
    pub wq_off: usize,
    pub last_active: Instant,
    /// Close once the write queue is empty: after a stream error, `Outbox::close`, or peer EOF.
    pub close_when_flushed: bool,
    pub read_closed: bool,
    dirty: bool,
    /// io_uring: operations in flight that reference this connection.
    pub ops: u32,
    pub recv_armed: bool,
    pub sending: bool,
    /// epoll: the registered interest set.
    pub interest: u32,
}

impl Conn {
    pub(crate) fn id(&self) -> ConnId {
        // Every connection gets its id at insertion; the Option is only for the Peer type.
        self.peer.conn.unwrap_or(ConnId::new(0, 0, 0))
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.wq.is_empty()
    }

    /// Queues bytes for writing; hands them back if the peer is not reading.
    pub(crate) fn enqueue(&mut self, buf: Vec<u8>) -> Result<(), Vec<u8>> {
        if self.wq_bytes + buf.len() > WRITE_QUEUE_MAX {
            return Err(buf);
        }
        self.wq_bytes += buf.len();
        self.wq.push_back(buf);
        Ok(())
    }

    /// Takes the next buffer to write, merging small queued messages into it so pipelined
    /// answers leave in one write.
    pub(crate) fn next_write(&mut self, max: usize) -> Option<Vec<u8>> {
        let mut first = self.wq.pop_front()?;
        while let Some(next) = self.wq.front() {
            if first.len() + next.len() > max {
                break;
            }
            first.extend_from_slice(next);
            self.wq.pop_front();
        }
        self.wq_bytes -= first.len();
        Some(first)
    }

    /// Drops `n` written bytes from the front of the queue (epoll), handing back every buffer
    /// that was written completely.
    pub(crate) fn written(&mut self, mut n: usize, mut done: impl FnMut(Vec<u8>)) {
        while n > 0 {
            let Some(front) = self.wq.front() else {
                return;
            };
            let rest = front.len() - self.wq_off;
            if n < rest {
                self.wq_off += n;
                return;
            }
            n -= rest;
            self.wq_off = 0;
            if let Some(buf) = self.wq.pop_front() {
                self.wq_bytes -= buf.len();
                done(buf);
            }
        }
    }

    /// Feeds received bytes through the framer and hands every complete message to the handler.
    /// When nothing is buffered, messages are framed straight from `data` (no copy); only an
    /// incomplete tail is kept.
    pub(crate) fn receive<H: Handler>(&mut self, data: &[u8], app: &mut App<H>, now: Instant) {
        self.last_active = now;
        Counters::add(&app.stats.tcp_rx_bytes, data.len() as u64);
        if self.close_when_flushed {
            // Closing (stream error, handler close): the rest of the stream is not read.
            return;
        }
        if self.rbuf.is_empty() {
            let used = self.frame_from(data, app, now);
            if used < data.len() {
                self.rbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.rbuf.extend_from_slice(data);
            let mut buf = std::mem::take(&mut self.rbuf);
            let used = self.frame_from(&buf, app, now);
            buf.drain(..used);
            self.rbuf = buf;
        }
    }

    fn frame_from<H: Handler>(&mut self, buf: &[u8], app: &mut App<H>, now: Instant) -> usize {
        let mut pos = 0;
        while pos < buf.len() && !self.close_when_flushed {
            match frame(&buf[pos..]) {
                Ok(Frame::Message { len }) => {
                    Counters::add(&app.stats.tcp_rx_messages, 1);
                    app.message(&buf[pos..pos + len], self.peer, now);
                    pos += len;
                }
                Ok(Frame::KeepAlive { len, ping }) => {
                    if ping && self.enqueue(PONG.to_vec()).is_ok() {
                        Counters::add(&app.stats.tcp_tx_messages, 1);
                    }
                    pos += len;
                }
                Ok(Frame::Incomplete) => return pos,
                Err(err) => {
                    Counters::add(&app.stats.tcp_stream_errors, 1);
                    app.stream_error(&buf[pos..], err, self.peer, now);
                    self.close_when_flushed = true;
                    return buf.len();
                }
            }
        }
        // Closing: whatever follows is discarded.
        if self.close_when_flushed {
            buf.len()
        } else {
            pos
        }
    }
}

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

pub(crate) struct ConnTable {
    worker: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_remote: HashMap<SocketAddr, ConnId>,
    /// Connections not yet closed (Connecting or Open).
    live: usize,
    max: usize,
    dirty: Vec<ConnId>,
}

impl ConnTable {
    pub(crate) fn new(worker: usize, max: usize) -> ConnTable {
        ConnTable {
            worker,
            slots: Vec::new(),
            free: Vec::new(),
            by_remote: HashMap::new(),
            live: 0,
            max: max.min(MAX_SLOTS - 1),
            dirty: Vec::new(),
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.live >= self.max
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Adds a connection; `None` when the per-worker limit is reached (the socket is dropped,
    /// which closes it).
    pub(crate) fn insert(
        &mut self,
        socket: Socket,
        remote: SocketAddr,
        local: SocketAddr,
        state: State,
        now: Instant,
    ) -> Option<ConnId> {
        if self.is_full() {
            return None;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        let id = ConnId::new(self.worker, slot, entry.gen);
        entry.conn = Some(Conn {
            socket,
            peer: Peer {
                transport: Transport::Tcp,
                remote,
                local,
                conn: Some(id),
            },
            state,
            rbuf: Vec::new(),
            wq: VecDeque::new(),
            wq_bytes: 0,
            wq_off: 0,
            last_active: now,
            close_when_flushed: false,
            read_closed: false,
            dirty: false,
            ops: 0,
            recv_armed: false,
            sending: false,
            interest: 0,
        });
        self.by_remote.insert(remote, id);
        self.live += 1;
        Some(id)
    }

    /// The connection `id` names, in any state (stale ids give `None`).
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        if id.worker() != self.worker & 0xffff {
            return None;
        }
        let slot = self.slots.get_mut(id.slot() as usize)?;
        if slot.gen != id.gen() {
            return None;
        }
        slot.conn.as_mut()
    }

    /// The same lookup from the bits io_uring carries in user_data.
    pub(crate) fn id_from_local_bits(&self, bits: u64) -> ConnId {
        let slot = (bits & ((1 << 24) - 1)) as u32;
        let gen = ((bits >> 24) & ((1 << 24) - 1)) as u32;
        ConnId::new(self.worker, slot, gen)
    }

    /// The open connection a TCP send should use: the one named by the peer, else any live one
    /// to the same remote address.
    pub(crate) fn route(&mut self, to: &Peer) -> Option<ConnId> {
        if let Some(id) = to.conn {
            if self.get_mut(id).is_some_and(|c| c.state != State::Draining) {
                return Some(id);
            }
        }
        let id = *self.by_remote.get(&to.remote)?;
        match self.get_mut(id) {
            Some(c) if c.state != State::Draining && !c.close_when_flushed => Some(id),
            _ => None,
        }
    }

    /// Takes the connection out of service; the backend still owns the socket until `release`.
    /// Returns the peer for `on_connection_closed`, or `None` if it was already closing.
    pub(crate) fn begin_close(&mut self, id: ConnId) -> Option<Peer> {
        let conn = self.get_mut(id)?;
        if conn.state == State::Draining {
            return None;
        }
        conn.state = State::Draining;
        let peer = conn.peer;
        if self.by_remote.get(&peer.remote) == Some(&id) {
            self.by_remote.remove(&peer.remote);
        }
        self.live -= 1;
        Some(peer)
    }

    /// Frees the slot; the returned connection's socket closes when dropped.
    pub(crate) fn release(&mut self, id: ConnId) -> Option<Conn> {
        self.get_mut(id)?;
        let slot = &mut self.slots[id.slot() as usize];
        let conn = slot.conn.take();
        slot.gen = slot.gen.wrapping_add(1) & ((1 << 24) - 1);
        self.free.push(id.slot());
        conn
    }

    /// Remembers that a connection has output or a pending close to act on this turn.
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(c) = self.get_mut(id) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    pub(crate) fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.dirty, into);
        for &id in into.iter() {
            if let Some(c) = self.get_mut(id) {
                c.dirty = false;
            }
        }
    }

    /// Live connections quiet since `now - timeout`.
    pub(crate) fn idle(&self, now: Instant, timeout: Duration, into: &mut Vec<ConnId>) {
        for s in &self.slots {
            if let Some(c) = &s.conn {
                if c.state != State::Draining
                    && now.saturating_duration_since(c.last_active) >= timeout
                {
                    into.push(c.id());
                }
            }
        }
    }

    /// Every connection still in the table, for shutdown.
    pub(crate) fn all(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref().map(Conn::id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OutMsg;
    use socket2::{Domain, Type};
    use std::any::Any;
    use std::sync::Arc;

    #[derive(Default)]
    struct Rec {
        msgs: Vec<Vec<u8>>,
        errors: usize,
    }
    impl Handler for Rec {
        fn on_message(&mut self, msg: &[u8], _: Peer, _: Instant, _: &mut crate::Outbox) {
            self.msgs.push(msg.to_vec());
        }
        fn on_stream_error(
            &mut self,
            _: &[u8],
            _: mgw_core::sip::framing::FrameError,
            _: Peer,
            _: Instant,
            _: &mut crate::Outbox,
        ) {
            self.errors += 1;
        }
        fn next_deadline(&self) -> Option<Instant> {
            None
        }
        fn on_timer(&mut self, _: Instant, _: &mut crate::Outbox) {}
        fn on_mail(&mut self, _: Box<dyn Any + Send>, _: Instant, _: &mut crate::Outbox) {}
    }

    fn table_with_conn() -> (ConnTable, ConnId) {
        let mut t = ConnTable::new(0, 4);
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let id = t
            .insert(s, a, a, State::Open, Instant::now())
            .expect("room");
        (t, id)
    }

    #[test]
    fn frames_across_reads_and_answers_ping() {
        let (mut t, id) = table_with_conn();
        let mut app = App::new(Rec::default(), Arc::default(), 0);
        let now = Instant::now();
        let c = t.get_mut(id).expect("conn");
        let two = b"A sip:a SIP/2.0\r\nl: 1\r\n\r\nxB sip:b SIP/2.0\r\nl: 0\r\n\r\n";
        c.receive(&two[..10], &mut app, now);
        c.receive(&two[10..], &mut app, now);
        c.receive(b"\r\n\r\nC sip:c SIP/2.0\r\nl: 2\r\n\r\nz", &mut app, now);
        c.receive(b"z", &mut app, now);
        assert_eq!(app_msgs(&app).len(), 3);
        assert_eq!(c.next_write(1024).as_deref(), Some(&b"\r\n"[..]));
        let mut spare: Vec<OutMsg> = Vec::new();
        app.out.take_msgs(&mut spare);
    }

    #[test]
    fn stream_error_stops_framing() {
        let (mut t, id) = table_with_conn();
        let mut app = App::new(Rec::default(), Arc::default(), 0);
        let c = t.get_mut(id).expect("conn");
        c.receive(
            b"A sip:a SIP/2.0\r\n\r\nB sip:b SIP/2.0\r\nl: 0\r\n\r\n",
            &mut app,
            Instant::now(),
        );
        assert!(c.close_when_flushed);
        assert_eq!(app_msgs(&app).len(), 0);
    }

    #[test]
    fn stale_ids_do_not_resolve() {
        let (mut t, id) = table_with_conn();
        assert!(t.begin_close(id).is_some());
        assert!(t.begin_close(id).is_none());
        assert!(t.release(id).is_some());
        assert!(t.get_mut(id).is_none());
        assert_eq!(t.live(), 0);
    }

    fn app_msgs(app: &App<Rec>) -> &Vec<Vec<u8>> {
        &app.handler_ref().msgs
    }
}
