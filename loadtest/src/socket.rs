//! Non-blocking connected UDP sockets with batched I/O: `recvmmsg` and `sendmmsg` move up to a
//! batch of datagrams per system call, which is where a UDP load generator spends its CPU.
//!
//! The only unsafe code of the crate is here, at the FFI boundary; each call says why it holds.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use crate::flow::Transmit;

/// Datagrams per recvmmsg call.
pub const RECV_BATCH: usize = 64;
/// Larger than any response a registrar sends over UDP; a truncated one is dropped.
const RECV_SIZE: usize = 8192;
/// Datagrams per sendmmsg call (the kernel takes up to UIO_MAXIOV = 1024).
const SEND_BATCH: usize = 64;
/// Socket buffers: a burst of thousands of answers must not overflow the receive queue while
/// the loop is busy sending.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// `count` sockets on ephemeral ports, each connected to `target` so the kernel filters out
/// other senders and sends need no address.
pub fn open(target: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    (0..count)
        .map(|_| {
            let any: SocketAddr = if target.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(any)?;
            s.connect(target)?;
            s.set_nonblocking(true)?;
            grow_buffer(s.as_raw_fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
            grow_buffer(s.as_raw_fd(), libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
            Ok(s)
        })
        .collect()
}

/// One socket bound to `local` (a fixed port the server is told to send to) and connected to
/// `target`: what the server sends from its listening port reaches it, nothing else does.
pub fn open_at(local: SocketAddr, target: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(local)?;
    s.connect(target)?;
    s.set_nonblocking(true)?;
    grow_buffer(s.as_raw_fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    grow_buffer(s.as_raw_fd(), libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
    Ok(s)
}

/// The FORCE variant ignores rmem_max/wmem_max but needs CAP_NET_ADMIN; otherwise the plain
/// option gives what the sysctl allows. Either failing leaves the default, which only costs
/// drops at high rates.
fn grow_buffer(fd: RawFd, force: libc::c_int, plain: libc::c_int) {
    for opt in [force, plain] {
        let v: libc::c_int = SOCKET_BUFFER;
        // SAFETY: `fd` is an open socket owned by the caller; the option value points to a live
        // c_int whose size is passed alongside.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Reused receive buffers for recvmmsg.
pub struct Receiver {
    data: Vec<u8>,
    lens: [usize; RECV_BATCH],
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Default for Receiver {
    fn default() -> Receiver {
        Receiver {
            data: vec![0; RECV_BATCH * RECV_SIZE],
            lens: [0; RECV_BATCH],
            // SAFETY: iovec and mmsghdr are plain C structs for which all-zero bytes are a valid
            // value (null pointers, zero lengths); `recv` fills in the pointers before use.
            iov: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            hdrs: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
        }
    }
}

impl Receiver {
    /// Reads up to a batch of datagrams without blocking; `Ok(0)` when none are waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let base = self.data.as_mut_ptr();
        for i in 0..RECV_BATCH {
            self.iov[i] = libc::iovec {
                // SAFETY: i * RECV_SIZE + RECV_SIZE <= data.len(), so the pointer stays inside
                // the allocation.
                iov_base: unsafe { base.add(i * RECV_SIZE) }.cast(),
                iov_len: RECV_SIZE,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points to one iovec in `self.iov`, each describing a disjoint
        // RECV_SIZE region of `self.data`; all three live in `self` and are not touched until
        // the call returns. No address or control buffers are passed. MSG_DONTWAIT makes the
        // call non-blocking, so the null timeout is never waited on.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let h = &self.hdrs[i];
            // A truncated datagram cannot be parsed: length 0 makes it an empty (stray) one.
            self.lens[i] = if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                0
            } else {
                (h.msg_len as usize).min(RECV_SIZE)
            };
        }
        Ok(n)
    }

    pub fn datagram(&self, i: usize) -> &[u8] {
        let start = i * RECV_SIZE;
        &self.data[start..start + self.lens[i]]
    }
}

/// Requests waiting to be sent, per socket: bytes back to back plus their ends. Filled through
/// [`Transmit`], drained by [`Sender::flush`].
pub struct Sender {
    queues: Vec<Queue>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Requests the kernel refused (e.g. ECONNREFUSED after an ICMP port unreachable); the
    /// retransmission timer sends them again.
    pub errors: u64,
}

#[derive(Default)]
struct Queue {
    data: Vec<u8>,
    ends: Vec<usize>,
    sent: usize,
}

impl Sender {
    pub fn new(sockets: usize) -> Sender {
        Sender {
            queues: (0..sockets).map(|_| Queue::default()).collect(),
            // SAFETY: as in `Receiver::default`: all-zero iovec/mmsghdr values are valid.
            iov: vec![unsafe { std::mem::zeroed() }; SEND_BATCH],
            hdrs: vec![unsafe { std::mem::zeroed() }; SEND_BATCH],
            errors: 0,
        }
    }

    /// Socket `i` still has requests the kernel would not take (its buffer was full).
    pub fn pending(&self, i: usize) -> bool {
        self.queues.get(i).is_some_and(|q| q.sent < q.ends.len())
    }

    /// Sends what is queued, in batches, until done or the kernel would block.
    pub fn flush(&mut self, sockets: &[UdpSocket]) {
        for (q, sock) in self.queues.iter_mut().zip(sockets) {
            while q.sent < q.ends.len() {
                let batch = (q.ends.len() - q.sent).min(SEND_BATCH);
                let mut start = if q.sent == 0 { 0 } else { q.ends[q.sent - 1] };
                for k in 0..batch {
                    let end = q.ends[q.sent + k];
                    self.iov[k] = libc::iovec {
                        // SAFETY: start <= end <= data.len(): `ends` only holds offsets
                        // recorded as data grew.
                        iov_base: unsafe { q.data.as_mut_ptr().add(start) }.cast(),
                        iov_len: end - start,
                    };
                    let h = &mut self.hdrs[k].msg_hdr;
                    h.msg_name = std::ptr::null_mut();
                    h.msg_namelen = 0;
                    h.msg_iov = &mut self.iov[k];
                    h.msg_iovlen = 1;
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                    h.msg_flags = 0;
                    start = end;
                }
                // SAFETY: the first `batch` headers each point to one iovec in `self.iov`
                // describing a region inside `q.data`; nothing is mutated until the call
                // returns. The socket is connected, so no address is given.
                let n = unsafe {
                    libc::sendmmsg(
                        sock.as_raw_fd(),
                        self.hdrs.as_mut_ptr(),
                        batch as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                        // The first request of the batch failed for itself: skip it.
                        _ => {
                            self.errors += 1;
                            q.sent += 1;
                        }
                    }
                } else {
                    q.sent += n as usize;
                }
            }
            if q.sent == q.ends.len() {
                q.data.clear();
                q.ends.clear();
                q.sent = 0;
            }
        }
    }
}

impl Transmit for Sender {
    fn send(&mut self, socket: usize, datagram: &[u8]) {
        if let Some(q) = self.queues.get_mut(socket) {
            q.data.extend_from_slice(datagram);
            q.ends.push(q.data.len());
        }
    }
}

/// This process's CPU time so far (user + system), in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given; all-zero bytes are a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn batches_round_trip_over_loopback() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let socks = open(server.local_addr().expect("addr"), 2).expect("open");
        let mut tx = Sender::new(2);
        let mut buf = [0u8; 64];
        // Rounds of 150 (two sendmmsg batches per socket) stay within the
        // echo socket's default receive buffer.
        for round in 0..2 {
            for i in 0..150u32 {
                tx.send((i % 2) as usize, format!("ping {round} {i}").as_bytes());
            }
            tx.flush(&socks);
            assert!(!tx.pending(0) && !tx.pending(1));
            for _ in 0..150 {
                let (n, from) = server.recv_from(&mut buf).expect("recv");
                assert!(buf[..n].starts_with(b"ping "));
                server.send_to(&buf[..n], from).expect("echo");
            }
        }
        let mut rx = Receiver::default();
        let mut got = 0;
        for _ in 0..200 {
            for s in &socks {
                let n = rx.recv(s.as_raw_fd()).expect("recv");
                for i in 0..n {
                    assert!(rx.datagram(i).starts_with(b"ping "));
                }
                got += n;
            }
            if got == 300 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got, 300);
        assert!(cpu_seconds() > 0.0);
    }
}
