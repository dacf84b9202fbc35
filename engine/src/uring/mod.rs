//! The io_uring backend: one ring per worker, multishot receives from a provided-buffer ring,
//! all sends of a loop turn submitted together.

pub(crate) mod bufring;
mod ops;
#[cfg(test)]
mod tests;
mod worker;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, register, types, IoUring};

pub(crate) use worker::{build_ring, UringWorker};

use bufring::BufRing;

/// Opcodes the worker uses; a kernel lacking any of them gets the epoll backend.
const NEEDED: &[(u8, &str)] = &[
    (opcode::RecvMsg::CODE, "recvmsg"),
    (opcode::SendMsg::CODE, "sendmsg"),
    (opcode::Recv::CODE, "recv"),
    (opcode::Send::CODE, "send"),
    (opcode::Accept::CODE, "accept"),
    (opcode::Connect::CODE, "connect"),
    (opcode::Read::CODE, "read"),
    (opcode::AsyncCancel::CODE, "async_cancel"),
];

/// Can this process use io_uring the way the workers do? Checks ring setup (seccomp and
/// `kernel.io_uring_disabled` fail here with EPERM/ENOSYS), the opcodes, provided-buffer rings,
/// and that a multishot recvmsg really delivers a datagram (kernel 6.0+).
///
/// Runs on a thread of its own: completion work of the probe ring is delivered to the thread
/// that submitted, and arriving late it would interrupt the caller's next blocking call with
/// EINTR (sockets with timeouts surface that). The thread takes it away when it exits.
pub(crate) fn probe() -> Result<(), String> {
    std::thread::Builder::new()
        .name("mgw-uring-probe".into())
        .spawn(probe_here)
        .map_err(|e| format!("cannot start the probe thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the probe panicked".into()))
}

fn probe_here() -> Result<(), String> {
    let mut ring = IoUring::new(8).map_err(|e| format!("io_uring_setup: {e}"))?;
    let mut p = register::Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| format!("opcode probe: {e}"))?;
    if let Some((_, name)) = NEEDED.iter().find(|(code, _)| !p.is_supported(*code)) {
        return Err(format!("the kernel lacks the {name} opcode"));
    }
    multishot_recv_works(&mut ring)
        .map_err(|e| format!("multishot recvmsg with provided buffers: {e}"))
}

fn multishot_recv_works(ring: &mut IoUring) -> io::Result<()> {
    let rx = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let tx = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let mut bufs = BufRing::new(2, 256, 0)?;
    // SAFETY: all-zero is a valid msghdr.
    let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    hdr.msg_namelen = crate::sockaddr::NAME_LEN as u32;
    // SAFETY: `bufs` is freed only after the receive's terminal completion was reaped, else
    // leaked (end of this function); the ring is dropped by the caller after that.
    unsafe { bufs.register(&ring.submitter())? };
    let sqe = opcode::RecvMsgMulti::new(types::Fd(rx.as_raw_fd()), &*hdr, 0)
        .build()
        .user_data(PROBE_RECV);
    // SAFETY: `hdr` and the buffer group stay allocated until the terminal CQE (same rule).
    unsafe { ring.submission().push(&sqe) }
        .map_err(|_| io::Error::other("submission queue full"))?;
    ring.submit()?;
    let mut terminal = false;
    let result = tx.send_to(b"probe", rx.local_addr()?).and_then(|_| {
        wait(ring, Duration::from_secs(1))?;
        match ring.completion().next() {
            Some(c) => {
                terminal = !cqueue::more(c.flags());
                if c.result() < 0 {
                    Err(io::Error::from_raw_os_error(-c.result()))
                } else if cqueue::buffer_select(c.flags()).is_none() {
                    Err(io::Error::other("completion without a provided buffer"))
                } else if terminal {
                    Err(io::Error::other("multishot ended after one completion"))
                } else {
                    Ok(())
                }
            }
            None => Err(io::Error::other("no completion within 1 s")),
        }
    });
    if !terminal && !cancel_and_reap(ring) {
        // The kernel may still write into them: never free.
        std::mem::forget(bufs);
        std::mem::forget(hdr);
    }
    result
}

const PROBE_RECV: u64 = 1;

/// Submits pending SQEs and waits for one completion, or at most `wait`. A timeout, a signal or
/// a full completion queue (EBUSY: the caller reaps first) is not an error.
pub(crate) fn enter(ring: &mut IoUring, wait: Option<Duration>) -> io::Result<()> {
    let r = match wait {
        None => ring.submit_and_wait(1).map(drop),
        Some(d) => {
            let ts = types::Timespec::from(d);
            let args = types::SubmitArgs::new().timespec(&ts);
            ring.submitter().submit_with_args(1, &args).map(drop)
        }
    };
    match r {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY)
            ) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn wait(ring: &mut IoUring, d: Duration) -> io::Result<()> {
    let ts = types::Timespec::from(d);
    let args = types::SubmitArgs::new().timespec(&ts);
    match ring.submitter().submit_with_args(1, &args) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Cancels the probe receive and waits (bounded) for its terminal completion.
fn cancel_and_reap(ring: &mut IoUring) -> bool {
    let sqe = opcode::AsyncCancel::new(PROBE_RECV).build().user_data(0);
    // SAFETY: a cancel request carries no pointers.
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        return false;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if wait(ring, Duration::from_millis(50)).is_err() {
            return false;
        }
        if ring
            .completion()
            .any(|c| c.user_data() == PROBE_RECV && !cqueue::more(c.flags()))
        {
            return true;
        }
    }
    false
}
