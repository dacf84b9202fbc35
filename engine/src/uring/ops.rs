//! Memory of in-flight io_uring operations.
//!
//! Every operation that makes the kernel read or write our memory (a send's bytes, its msghdr,
//! iovec and destination address, a connect's address) keeps that memory in a boxed [`Op`]
//! here, keyed by the operation's user_data. The box is removed only when the operation's final
//! CQE has been reaped, so nothing the kernel may still touch is freed or reused: a connection
//! being closed, or the handler dropping its reference, does not matter.

use std::net::SocketAddr;

use socket2::SockAddr;

use crate::peer::ConnId;

pub(crate) enum Op {
    /// A UDP datagram; `hdr` points at `iov`, `addr` and (through `iov`) `buf`, all inside this
    /// same box or owned by it.
    UdpSend {
        hdr: libc::msghdr,
        iov: libc::iovec,
        addr: SockAddr,
        buf: Vec<u8>,
    },
    /// Bytes of one connection; `off` of them are written already (partial writes continue).
    TcpSend {
        conn: ConnId,
        buf: Vec<u8>,
        off: usize,
    },
    Connect {
        conn: ConnId,
        addr: SockAddr,
    },
    /// A recycled box.
    Idle,
}

#[derive(Default)]
pub(crate) struct OpSlab {
    slots: Vec<Option<Box<Op>>>,
    free: Vec<u32>,
    /// Boxes of finished operations, reused so a send does not allocate. Boxed on purpose: the
    /// point is keeping the allocations, whose addresses the kernel is given.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Op>>,
}

impl OpSlab {
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Stores `op` and returns its key and a stable pointer to it (the box never moves while
    /// stored, whatever happens to the slab's vector).
    pub(crate) fn insert(&mut self, op: Op) -> (u32, &mut Op) {
        let mut b = self.spare.pop().unwrap_or_else(|| Box::new(Op::Idle));
        *b = op;
        let key = match self.free.pop() {
            Some(k) => {
                self.slots[k as usize] = Some(b);
                k
            }
            None => {
                self.slots.push(Some(b));
                (self.slots.len() - 1) as u32
            }
        };
        let op = self.slots[key as usize]
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("just stored"));
        (key, op)
    }

    /// Removes the operation (its final CQE was reaped, or it was never submitted).
    pub(crate) fn remove(&mut self, key: u32) -> Option<Box<Op>> {
        let b = self.slots.get_mut(key as usize)?.take()?;
        self.free.push(key);
        Some(b)
    }

    pub(crate) fn recycle(&mut self, mut b: Box<Op>) {
        *b = Op::Idle;
        if self.spare.len() < 1024 {
            self.spare.push(b);
        }
    }
}

/// A UDP send whose self-references are set after it sits at its final address.
pub(crate) fn udp_send(remote: SocketAddr, buf: Vec<u8>) -> Op {
    // SAFETY: msghdr and iovec are plain C structs for which all-zero is a valid value.
    let (hdr, iov) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    Op::UdpSend {
        hdr,
        iov,
        addr: SockAddr::from(remote),
        buf,
    }
}

/// Points the msghdr of a stored `UdpSend` at its own iovec, address and bytes.
pub(crate) fn link_udp_send(op: &mut Op) -> Option<*const libc::msghdr> {
    let Op::UdpSend {
        hdr,
        iov,
        addr,
        buf,
    } = op
    else {
        return None;
    };
    iov.iov_base = buf.as_mut_ptr().cast();
    iov.iov_len = buf.len();
    hdr.msg_name = addr.as_ptr().cast_mut().cast();
    hdr.msg_namelen = addr.len();
    hdr.msg_iov = iov;
    hdr.msg_iovlen = 1;
    Some(hdr)
}
