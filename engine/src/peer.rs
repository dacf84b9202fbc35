//! Who a message came from and how to answer it.

use std::net::SocketAddr;

use crate::config::Transport;

/// A TCP connection of one worker. The worker index is part of the id, so an id that reaches
/// another worker (e.g. through a mailbox) is recognised as foreign instead of naming a random
/// connection there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

const SLOT_BITS: u32 = 24;
const GEN_BITS: u32 = 24;
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;

impl ConnId {
    pub(crate) fn new(worker: usize, slot: u32, gen: u32) -> ConnId {
        let w = (worker as u64) & 0xffff;
        let g = u64::from(gen) & ((1 << GEN_BITS) - 1);
        let s = u64::from(slot) & ((1 << SLOT_BITS) - 1);
        ConnId(w << (SLOT_BITS + GEN_BITS) | g << SLOT_BITS | s)
    }
    /// Index of the worker that owns the connection.
    pub fn worker(self) -> usize {
        (self.0 >> (SLOT_BITS + GEN_BITS)) as usize
    }
    pub(crate) fn slot(self) -> u32 {
        (self.0 & ((1 << SLOT_BITS) - 1)) as u32
    }
    pub(crate) fn gen(self) -> u32 {
        ((self.0 >> SLOT_BITS) & ((1 << GEN_BITS) - 1)) as u32
    }
    /// Slot and generation without the worker: what the io_uring user_data carries.
    pub(crate) fn local_bits(self) -> u64 {
        self.0 & ((1 << (SLOT_BITS + GEN_BITS)) - 1)
    }
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// The other end of a message, and the local socket or connection it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub remote: SocketAddr,
    /// The address of the receiving socket as bound (an unspecified listen address stays
    /// unspecified); for UDP it selects the socket an answer leaves from.
    pub local: SocketAddr,
    /// The TCP connection, `None` for UDP and for "connect if needed" sends.
    pub conn: Option<ConnId>,
}

impl Peer {
    pub fn udp(remote: SocketAddr, local: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            remote,
            local,
            conn: None,
        }
    }
    /// A TCP destination without a connection: the engine reuses one to `remote` or opens one.
    pub fn tcp(remote: SocketAddr) -> Peer {
        let local = match remote {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        Peer {
            transport: Transport::Tcp,
            remote,
            local,
            conn: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips() {
        let id = ConnId::new(7, 0x00ab_cdef, 0x0012_3456);
        assert_eq!(id.worker(), 7);
        assert_eq!(id.slot(), 0x00ab_cdef);
        assert_eq!(id.gen(), 0x0012_3456);
    }
}
