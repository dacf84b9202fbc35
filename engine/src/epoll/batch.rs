//! recvmmsg / sendmmsg batches: one system call for many datagrams.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

use crate::sockaddr;

/// Receive side: `n` buffers of `size` bytes with their address slots, reused for every call.
pub(crate) struct RecvBatch {
    size: usize,
    bufs: Vec<u8>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

pub(crate) struct Datagram<'a> {
    pub data: &'a [u8],
    pub from: Option<SocketAddr>,
    pub truncated: bool,
}

impl RecvBatch {
    pub(crate) fn new(n: usize, size: usize) -> RecvBatch {
        RecvBatch {
            size,
            bufs: vec![0; n * size],
            // SAFETY: iovec, sockaddr_storage and mmsghdr are C structs; all-zero is valid.
            iovs: (0..n).map(|_| unsafe { zeroed() }).collect(),
            names: (0..n).map(|_| unsafe { zeroed() }).collect(),
            hdrs: (0..n).map(|_| unsafe { zeroed() }).collect(),
        }
    }

    /// Receives up to `n` datagrams without blocking; `Ok(0)` when none is waiting.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // The pointers are rebuilt every call from fresh borrows, so none outlives a borrow.
        let base = self.bufs.as_mut_ptr();
        for i in 0..self.hdrs.len() {
            // SAFETY: i * size + size <= bufs.len(), so the iovec covers our own buffer.
            self.iovs[i].iov_base = unsafe { base.add(i * self.size) }.cast();
            self.iovs[i].iov_len = self.size;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at buffers, iovecs and address slots owned by `self`,
        // which stay in place for this synchronous call; the kernel writes at most the lengths
        // given.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(r as usize)
    }

    pub(crate) fn get(&self, i: usize) -> Datagram<'_> {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.size);
        let name_len = (h.msg_hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: `names[i]` is a live sockaddr_storage; we view its first `name_len` bytes.
        let name = unsafe {
            std::slice::from_raw_parts(
                (&self.names[i] as *const libc::sockaddr_storage).cast::<u8>(),
                name_len,
            )
        };
        Datagram {
            data: &self.bufs[i * self.size..i * self.size + len],
            from: sockaddr::from_raw(name),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }
}

impl RecvBatch {
    /// Datagram `i`'s whole buffer (its bytes first): room for a handler whose reply is longer
    /// than what it received (a transcoded payload).
    pub(crate) fn buffer_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * self.size..(i + 1) * self.size]
    }
}

pub(crate) struct OutDatagram {
    pub to: SockAddr,
    pub buf: Vec<u8>,
}

/// Most datagrams handed to one sendmmsg call.
const SEND_BATCH: usize = 64;

/// Sends `msgs` on `fd` with as few sendmmsg calls as possible. Returns (sent, failed) counts;
/// datagrams the socket cannot take right now (EAGAIN) count as failed: UDP may drop, and a
/// retry queue would only delay everything behind it.
pub(crate) fn send_all(fd: RawFd, msgs: &[OutDatagram], sent_bytes: &mut u64) -> (u64, u64) {
    // SAFETY: all-zero is valid for these C structs.
    let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { zeroed() };
    let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { zeroed() };
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut start = 0;
    while start < msgs.len() {
        let chunk = &msgs[start..(start + SEND_BATCH).min(msgs.len())];
        for (i, m) in chunk.iter().enumerate() {
            iovs[i].iov_base = m.buf.as_ptr().cast_mut().cast();
            iovs[i].iov_len = m.buf.len();
            let h = &mut hdrs[i];
            h.msg_hdr.msg_name = m.to.as_ptr().cast_mut().cast();
            h.msg_hdr.msg_namelen = m.to.len();
            h.msg_hdr.msg_iov = &mut iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        // SAFETY: the headers point at the local iovec array and at addresses and bytes owned
        // by `msgs`, all alive and unmoved during this synchronous call; the kernel only reads
        // them (and writes msg_len).
        let r = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                chunk.len() as u32,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if r > 0 {
            for h in &hdrs[..r as usize] {
                *sent_bytes += u64::from(h.msg_len);
            }
            sent += r as u64;
            start += r as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                failed += (msgs.len() - start) as u64;
                break;
            }
            _ => {
                // This datagram is unsendable (no route, too big): skip it, keep the rest.
                failed += 1;
                start += 1;
            }
        }
    }
    (sent, failed)
}
