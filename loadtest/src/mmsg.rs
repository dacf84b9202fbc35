//! Batched I/O on unconnected UDP sockets for the RTP generator and the floor relay: `recvmmsg`
//! (optionally with kernel receive timestamps), `sendmmsg` with a destination per datagram,
//! `epoll`, and the clocks. Like `socket.rs`, this is FFI: each unsafe block says why it holds.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

// Not exported by the libc crate for x86-64 / aarch64; these are the asm-generic values, which
// both use (include/uapi/asm-generic/socket.h).
const SO_TIMESTAMPNS: libc::c_int = 35;
const SCM_TIMESTAMPNS: libc::c_int = SO_TIMESTAMPNS;
const SO_MEMINFO: libc::c_int = 55;
/// Control space per datagram: one `cmsghdr` plus a `timespec`, rounded up generously.
const CONTROL_WORDS: usize = 8;

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; both clock ids always exist on Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds on CLOCK_MONOTONIC: for scheduling sends.
pub fn mono_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds on CLOCK_REALTIME: the clock the kernel stamps received datagrams with, so the
/// send time written into a packet must be on it too.
pub fn real_ns() -> u64 {
    clock(libc::CLOCK_REALTIME)
}

/// Sleeps until `deadline` on CLOCK_MONOTONIC.
pub fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid absolute time; the remainder pointer may be null with
    // TIMER_ABSTIME. An early return (a signal) only makes the caller's turn come sooner.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// The default 50 us timer slack would make every sleep of the send loop up to 50 us late.
pub fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long by value and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Thousands of sockets need more than the usual soft limit of 1024 descriptors.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit for getrlimit to fill and setrlimit to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: `fd` is an open socket; the value points to a live c_int of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Socket buffers of `bytes` each way: the FORCE options pass rmem_max/wmem_max when running
/// with CAP_NET_ADMIN, the plain ones otherwise give what the sysctl allows.
pub fn grow_buffers(sock: &UdpSocket, bytes: libc::c_int) {
    let fd = sock.as_raw_fd();
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if !setsockopt_int(fd, libc::SOL_SOCKET, force, bytes) {
            setsockopt_int(fd, libc::SOL_SOCKET, plain, bytes);
        }
    }
}

/// Asks the kernel to stamp every datagram with its arrival time (CLOCK_REALTIME).
pub fn enable_rx_timestamps(sock: &UdpSocket) -> io::Result<()> {
    if setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, SO_TIMESTAMPNS, 1) {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Datagrams the kernel dropped on this socket because its receive buffer was full.
pub fn socket_drops(sock: &UdpSocket) -> u64 {
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes and `len` is updated to what was written.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let at = libc::SK_MEMINFO_DROPS as usize;
    if rc == 0 && (len as usize) > at * 4 {
        u64::from(info[at])
    } else {
        0
    }
}

/// A socket address in the form `sendmmsg` takes, converted once.
#[derive(Clone, Copy)]
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub fn new(addr: SocketAddr) -> RawAddr {
        // SAFETY: all-zero bytes are a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned at least like
                // sockaddr_in, so the write stays inside `storage`.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Reused buffers for `recvmmsg`; no source addresses (neither user needs them).
pub struct RecvBatch {
    slot: usize,
    data: Vec<u8>,
    lens: Vec<usize>,
    /// Kernel arrival time per datagram (CLOCK_REALTIME ns), 0 when none came with it.
    stamps: Vec<u64>,
    /// u64 words keep every datagram's control buffer aligned for `cmsghdr`.
    control: Vec<u64>,
    timestamps: bool,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    /// Up to `batch` datagrams of at most `slot` bytes per call; `timestamps` asks for the
    /// SO_TIMESTAMPNS control messages (the socket must have them enabled).
    pub fn new(batch: usize, slot: usize, timestamps: bool) -> RecvBatch {
        RecvBatch {
            slot,
            data: vec![0; batch * slot],
            lens: vec![0; batch],
            stamps: vec![0; batch],
            control: vec![0; if timestamps { batch * CONTROL_WORDS } else { 0 }],
            timestamps,
            // SAFETY: all-zero iovec/mmsghdr values are valid (null pointers, zero lengths);
            // `recv` fills in the pointers before every call.
            iov: vec![unsafe { std::mem::zeroed() }; batch],
            hdrs: vec![unsafe { std::mem::zeroed() }; batch],
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Reads up to a batch without blocking; `Ok(0)` when nothing is waiting. Errors queued by
    /// ICMP (a relay port that has gone) are reported as `Err` once and then clear.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let batch = self.lens.len();
        let base = self.data.as_mut_ptr();
        let cbase = self.control.as_mut_ptr();
        for i in 0..batch {
            self.iov[i] = libc::iovec {
                // SAFETY: (i + 1) * slot <= data.len(), so the pointer stays inside it.
                iov_base: unsafe { base.add(i * self.slot) }.cast(),
                iov_len: self.slot,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            if self.timestamps {
                // SAFETY: (i + 1) * CONTROL_WORDS <= control.len().
                h.msg_control = unsafe { cbase.add(i * CONTROL_WORDS) }.cast();
                h.msg_controllen = CONTROL_WORDS * 8;
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points to its own iovec and control region inside buffers owned
        // by `self`, untouched until the call returns; MSG_DONTWAIT means the null timeout is
        // never waited on.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                batch as libc::c_uint,
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
            self.lens[i] = if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                0
            } else {
                (h.msg_len as usize).min(self.slot)
            };
            self.stamps[i] = if self.timestamps {
                rx_stamp(&h.msg_hdr)
            } else {
                0
            };
        }
        Ok(n)
    }

    pub fn datagram(&self, i: usize) -> &[u8] {
        let start = i * self.slot;
        &self.data[start..start + self.lens[i]]
    }

    /// The kernel's arrival time of datagram `i`, CLOCK_REALTIME ns, if it came with one.
    pub fn stamp(&self, i: usize) -> Option<u64> {
        Some(self.stamps[i]).filter(|&s| s != 0)
    }
}

fn rx_stamp(h: &libc::msghdr) -> u64 {
    // SAFETY: `h` was just filled in by recvmmsg: msg_control/msg_controllen describe the
    // control data the kernel wrote into our buffer, which the CMSG macros walk within bounds.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

/// Reused headers for `sendmmsg` with a destination per datagram.
pub struct SendBatch {
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

/// What one [`SendBatch::send`] did.
#[derive(Default, Clone, Copy)]
pub struct SendResult {
    pub sent: usize,
    /// Datagrams the kernel refused (full buffer, ICMP-reported errors); they are not retried:
    /// for RTP a late packet is as good as lost.
    pub failed: usize,
}

impl SendBatch {
    pub fn new(batch: usize) -> SendBatch {
        SendBatch {
            // SAFETY: as in `RecvBatch::new`.
            iov: vec![unsafe { std::mem::zeroed() }; batch],
            hdrs: vec![unsafe { std::mem::zeroed() }; batch],
        }
    }

    /// Sends each `(destination, datagram)` in as few system calls as the batch size allows.
    pub fn send(&mut self, fd: RawFd, items: &[(&RawAddr, &[u8])]) -> SendResult {
        let mut r = SendResult::default();
        let mut done = 0;
        while done < items.len() {
            let batch = (items.len() - done).min(self.hdrs.len());
            for k in 0..batch {
                let (dest, bytes) = items[done + k];
                self.iov[k] = libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                };
                let h = &mut self.hdrs[k].msg_hdr;
                h.msg_name = (&dest.storage as *const libc::sockaddr_storage) as *mut libc::c_void;
                h.msg_namelen = dest.len;
                h.msg_iov = &mut self.iov[k];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
            }
            // SAFETY: the first `batch` headers point to iovecs and addresses borrowed from
            // `items`, which outlive the call; the kernel only reads through them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    batch as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram failed on its own: drop it and go on with the rest.
                r.failed += 1;
                done += 1;
            } else {
                r.sent += n as usize;
                done += n as usize;
            }
        }
        r
    }
}

/// An epoll instance whose events carry a caller-chosen `u64` token.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(max_events: usize) -> io::Result<Epoll> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max_events.max(1)],
        })
    }

    /// Level-triggered readability of `fd`. Closing `fd` removes it.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` (None: for ever; zero: just looks) and returns the tokens of the
    /// ready descriptors. A signal makes it return no tokens.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<u64>> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `events` is writable for its length; the timeout is null or a live timespec;
        // a null sigmask keeps the thread's mask.
        let n = unsafe {
            libc::epoll_pwait2(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                tsp,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        // The struct is packed on x86-64: copy the field out rather than borrow it.
        Ok(self.events[..n as usize].iter().map(|e| e.u64).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_and_receive_with_kernel_timestamps() {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        enable_rx_timestamps(&b).expect("timestamps");
        let dest = RawAddr::new(b.local_addr().expect("addr"));
        let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 20]).collect();
        let items: Vec<(&RawAddr, &[u8])> = msgs.iter().map(|m| (&dest, m.as_slice())).collect();
        let before = real_ns();
        let r = SendBatch::new(4).send(a.as_raw_fd(), &items);
        assert_eq!((r.sent, r.failed), (10, 0));
        let mut ep = Epoll::new(8).expect("epoll");
        ep.add(b.as_raw_fd(), 7).expect("add");
        assert_eq!(
            ep.wait(Some(Duration::from_secs(2))).expect("wait"),
            vec![7]
        );
        let mut rx = RecvBatch::new(16, 64, true);
        let n = rx.recv(b.as_raw_fd()).expect("recv");
        assert_eq!(n, 10);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(rx.datagram(i), m.as_slice());
            let t = rx.stamp(i).expect("stamp");
            assert!(t >= before.saturating_sub(1_000_000) && t <= real_ns());
        }
        assert_eq!(rx.recv(b.as_raw_fd()).expect("recv"), 0);
        assert_eq!(socket_drops(&b), 0);
    }
}
