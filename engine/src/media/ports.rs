//! Media ports: the handler's [`PortControl`], the worker's socket table, and the tokens that
//! name a socket in completions and readiness events.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A burst of packets while the worker is busy should wait, not be dropped; the kernel clamps it
/// to net.core.rmem_max.
const MEDIA_RCVBUF: usize = 1024 * 1024;

const PORTS: usize = 1 << 16;

/// Opens and closes this worker's media ports, from within handler calls. Changes take effect
/// when the call returns (before the next packet is handled); a packet received on a port is
/// handled by the worker that opened it.
pub struct PortControl {
    bind_ip: IpAddr,
    nonblocking: bool,
    /// Ports open as the handler sees them, one bit each.
    open: Box<[u64]>,
    pub(crate) ops: Vec<PortOp>,
}

pub(crate) enum PortOp {
    Open(u16, Socket),
    Close(u16),
}

impl PortControl {
    pub(crate) fn new(bind_ip: IpAddr, nonblocking: bool) -> PortControl {
        PortControl {
            bind_ip,
            nonblocking,
            open: vec![0u64; PORTS / 64].into_boxed_slice(),
            ops: Vec::new(),
        }
    }

    /// Binds a UDP socket to `bind_ip:port` on this worker (port 0: any free port) and returns
    /// the port. RTP and RTCP are separate calls (`port`, `port + 1`) unless the session muxes.
    ///
    /// A port closed a moment ago may still be held by the kernel until the worker has
    /// finished with its socket (io_uring: the next loop turn); opening it again fails with
    /// `AddrInUse` until then.
    pub fn open(&mut self, port: u16) -> io::Result<u16> {
        if port != 0 && self.is_open(port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("media port {port} is already open on this worker"),
            ));
        }
        let socket = bind_udp(SocketAddr::new(self.bind_ip, port), self.nonblocking)?;
        let bound = socket
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("media socket has no IP address"))?;
        self.set(bound, true);
        self.ops.push(PortOp::Open(bound, socket));
        Ok(bound)
    }

    /// Stops receiving on `port` and closes its socket; `false` if it was not open here.
    pub fn close(&mut self, port: u16) -> bool {
        if !self.is_open(port) {
            return false;
        }
        self.set(port, false);
        self.ops.push(PortOp::Close(port));
        true
    }

    pub fn is_open(&self, port: u16) -> bool {
        let p = usize::from(port);
        self.open[p / 64] & (1 << (p % 64)) != 0
    }

    pub fn bind_ip(&self) -> IpAddr {
        self.bind_ip
    }

    /// A port the backend could not put into service.
    pub(crate) fn forget(&mut self, port: u16) {
        self.set(port, false);
    }

    fn set(&mut self, port: u16, on: bool) {
        let p = usize::from(port);
        if on {
            self.open[p / 64] |= 1 << (p % 64);
        } else {
            self.open[p / 64] &= !(1 << (p % 64));
        }
    }
}

pub(crate) fn bind_udp(addr: SocketAddr, nonblocking: bool) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 peers too (as v4-mapped addresses, see `canonical`).
        let _ = s.set_only_v6(false);
    }
    let _ = s.set_recv_buffer_size(MEDIA_RCVBUF);
    s.set_nonblocking(nonblocking)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

/// A v4-mapped source address (a dual-stack socket) as the IPv4 address it is.
pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

/// The destination as the sending socket needs it: an IPv6 socket reaches IPv4 peers through
/// v4-mapped addresses.
pub(crate) fn target(v6_socket: bool, to: SocketAddr) -> SockAddr {
    match to {
        SocketAddr::V4(v4) if v6_socket => SockAddr::from(SocketAddr::new(
            IpAddr::V6(v4.ip().to_ipv6_mapped()),
            v4.port(),
        )),
        _ => SockAddr::from(to),
    }
}

/// One socket of a worker.
pub(crate) struct Sock {
    pub socket: Socket,
    pub port: u16,
    pub v6: bool,
    /// The control socket (not a media port).
    pub control: bool,
    /// io_uring: a multishot receive is in flight.
    pub armed: bool,
    /// io_uring: the port was closed; the socket goes when `ops` reaches 0.
    pub closing: bool,
    /// io_uring: a cancel of the receive is in flight.
    pub cancelling: bool,
    /// io_uring: operations in flight on the socket (the receive and sends from it).
    pub ops: u32,
}

impl Sock {
    pub(crate) fn new(socket: Socket, port: u16, v6: bool, control: bool) -> Sock {
        Sock {
            socket,
            port,
            v6,
            control,
            armed: false,
            closing: false,
            cancelling: false,
            ops: 0,
        }
    }
}

/// Sockets by slot (a slot's generation changes when it is reused, so a stale token cannot reach
/// a new socket), and media ports to slots.
pub(crate) struct SockTable {
    slots: Vec<(u16, Option<Sock>)>,
    free: Vec<u32>,
    /// Slot + 1 per port; 0 = not open.
    by_port: Box<[u32]>,
}

impl SockTable {
    pub(crate) fn new() -> SockTable {
        SockTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_port: vec![0u32; PORTS].into_boxed_slice(),
        }
    }

    /// Stores `sock` (and maps its port unless it is the control socket).
    pub(crate) fn insert(&mut self, sock: Sock) -> (u32, u16) {
        let port = (!sock.control).then_some(sock.port);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize].1 = Some(sock);
                s
            }
            None => {
                self.slots.push((0, Some(sock)));
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(p) = port {
            self.by_port[usize::from(p)] = slot + 1;
        }
        (slot, self.slots[slot as usize].0)
    }

    pub(crate) fn get(&mut self, slot: u32, gen: u16) -> Option<&mut Sock> {
        match self.slots.get_mut(slot as usize)? {
            (g, Some(s)) if *g == gen => Some(s),
            _ => None,
        }
    }

    /// The socket of a media port, with its slot and generation.
    pub(crate) fn by_port(&mut self, port: u16) -> Option<(u32, u16, &mut Sock)> {
        let slot = self.by_port[usize::from(port)].checked_sub(1)?;
        match self.slots.get_mut(slot as usize)? {
            (g, Some(s)) => Some((slot, *g, s)),
            _ => None,
        }
    }

    /// Takes `port` out of the port map (its socket stays until `remove`).
    pub(crate) fn unmap(&mut self, port: u16) {
        self.by_port[usize::from(port)] = 0;
    }

    pub(crate) fn remove(&mut self, slot: u32) -> Option<Sock> {
        let (gen, s) = self.slots.get_mut(slot as usize)?;
        let sock = s.take()?;
        *gen = gen.wrapping_add(1);
        if !sock.control && self.by_port[usize::from(sock.port)] == slot + 1 {
            self.by_port[usize::from(sock.port)] = 0;
        }
        self.free.push(slot);
        Some(sock)
    }
}

/// What a completion (io_uring user_data) or readiness event (epoll data) refers to: an 8-bit
/// kind, a 16-bit generation and a 32-bit slot or buffer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// Receive on socket (slot, generation).
    Recv(u32, u16),
    /// A send from provided buffer `bid`.
    Send(u16),
    /// The mailbox eventfd.
    Wake,
    /// Cancelling the receive of socket (slot, generation).
    Cancel(u32, u16),
    /// Cancelling everything (shutdown).
    CancelAll,
}

impl Token {
    pub(crate) fn encode(self) -> u64 {
        let (kind, gen, low): (u64, u16, u32) = match self {
            Token::Recv(s, g) => (1, g, s),
            Token::Send(b) => (2, 0, u32::from(b)),
            Token::Wake => (3, 0, 0),
            Token::Cancel(s, g) => (4, g, s),
            Token::CancelAll => (5, 0, 0),
        };
        kind << 56 | u64::from(gen) << 32 | u64::from(low)
    }

    pub(crate) fn decode(v: u64) -> Option<Token> {
        let low = v as u32;
        let gen = (v >> 32) as u16;
        Some(match v >> 56 {
            1 => Token::Recv(low, gen),
            2 => Token::Send(u16::try_from(low).ok()?),
            3 => Token::Wake,
            4 => Token::Cancel(low, gen),
            5 => Token::CancelAll,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for t in [
            Token::Recv(7, 65535),
            Token::Send(1023),
            Token::Wake,
            Token::Cancel(u32::MAX, 3),
            Token::CancelAll,
        ] {
            assert_eq!(Token::decode(t.encode()), Some(t));
        }
        assert_eq!(Token::decode(0), None);
    }

    #[test]
    fn port_control_tracks_and_refuses_duplicates() {
        let mut pc = PortControl::new(IpAddr::from([127, 0, 0, 1]), true);
        let p = pc.open(0).expect("open");
        assert!(pc.is_open(p));
        let again = pc.open(p).err().map(|e| e.kind());
        assert_eq!(again, Some(io::ErrorKind::AddrInUse));
        assert!(pc.close(p));
        assert!(!pc.is_open(p));
        assert!(!pc.close(p));
        assert!(matches!(
            pc.ops.as_slice(),
            [PortOp::Open(a, _), PortOp::Close(b)] if *a == p && *b == p
        ));
    }

    #[test]
    fn slots_are_generational() {
        let mut t = SockTable::new();
        let s = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), true).expect("bind");
        let (slot, gen) = t.insert(Sock::new(s, 4000, false, false));
        assert!(t.by_port(4000).is_some());
        assert!(t.remove(slot).is_some());
        assert!(t.by_port(4000).is_none());
        let s = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), true).expect("bind");
        let (slot2, gen2) = t.insert(Sock::new(s, 4002, false, false));
        assert_eq!(slot2, slot);
        assert_ne!(gen2, gen);
        assert!(t.get(slot, gen).is_none(), "a stale token finds nothing");
        assert!(t.get(slot2, gen2).is_some());
    }

    #[test]
    fn mapped_addresses() {
        let v4: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:4000".parse().expect("addr");
        assert_eq!(canonical(mapped), v4);
        assert_eq!(target(true, v4).as_socket(), Some(mapped));
        assert_eq!(target(false, v4).as_socket(), Some(v4));
    }
}
