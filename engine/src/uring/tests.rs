//! The kernel-boundary protocol of the io_uring backend, exercised directly against the
//! kernel: provided buffers handed out, exhausted (ENOBUFS ends the multishot), given back and
//! re-armed; op boxes that keep their address while the slab grows.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, types, IoUring};

use super::bufring::BufRing;
use super::ops::{self, Op, OpSlab};

fn wait(ring: &mut IoUring) -> Vec<cqueue::Entry> {
    let ts = types::Timespec::from(Duration::from_secs(2));
    let args = types::SubmitArgs::new().timespec(&ts);
    let _ = ring.submitter().submit_with_args(1, &args);
    ring.completion().collect()
}

#[test]
fn provided_buffers_exhaust_and_come_back() {
    if let Err(why) = super::probe() {
        panic!("io_uring unavailable: {why}");
    }
    let mut ring = IoUring::new(16).expect("ring");
    let mut bufs = BufRing::new(2, 512, 7).expect("buffers");
    // SAFETY: `bufs` and `hdr` outlive every operation: the test reaps the terminal CQE of the
    // last receive (cancelled at the end) before they drop.
    unsafe { bufs.register(&ring.submitter()).expect("register") };
    // SAFETY: all-zero is a valid msghdr.
    let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    hdr.msg_namelen = crate::sockaddr::NAME_LEN as u32;

    let rx = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    let tx = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    for m in [&b"one"[..], b"two", b"three"] {
        tx.send_to(m, rx.local_addr().expect("addr")).expect("send");
    }
    let arm = |ring: &mut IoUring, hdr: &libc::msghdr| {
        let sqe = opcode::RecvMsgMulti::new(types::Fd(rx.as_raw_fd()), hdr, 7)
            .build()
            .user_data(42);
        // SAFETY: as above.
        unsafe { ring.submission().push(&sqe).expect("sq room") };
    };
    arm(&mut ring, &hdr);

    let mut got = Vec::new();
    let mut ended_for_lack_of_buffers = false;
    while !ended_for_lack_of_buffers {
        for c in wait(&mut ring) {
            if c.result() == -libc::ENOBUFS {
                assert!(!cqueue::more(c.flags()), "ENOBUFS ends the multishot");
                ended_for_lack_of_buffers = true;
                continue;
            }
            let bid = cqueue::buffer_select(c.flags()).expect("a provided buffer");
            // SAFETY: the CQE handed us `bid`; it is recycled only after this borrow.
            let data = unsafe { bufs.data(bid, c.result() as usize) };
            let msg = types::RecvMsgOut::parse(data, &hdr).expect("recvmsg layout");
            assert_eq!(
                crate::sockaddr::from_raw(msg.name_data()),
                tx.local_addr().ok()
            );
            got.push((bid, msg.payload_data().to_vec()));
        }
    }
    assert_eq!(got.len(), 2, "two buffers, two datagrams");
    assert_ne!(got[0].0, got[1].0);
    // Give the buffers back only now, as the worker does after the handler call, re-arm, and the
    // third datagram (still queued in the socket) arrives.
    for (bid, _) in &got {
        bufs.recycle(*bid);
    }
    bufs.publish();
    arm(&mut ring, &hdr);
    let third = loop {
        let cs = wait(&mut ring);
        if let Some(c) = cs.into_iter().find(|c| c.result() > 0) {
            break c;
        }
    };
    let bid = cqueue::buffer_select(third.flags()).expect("buffer");
    // SAFETY: as above.
    let data = unsafe { bufs.data(bid, third.result() as usize) };
    let payload = types::RecvMsgOut::parse(data, &hdr)
        .expect("layout")
        .payload_data()
        .to_vec();
    let mut all: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
    all.push(payload);
    assert_eq!(
        all,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );

    // Cancel and reap the terminal completion before the buffers and header go away.
    let cancel = opcode::AsyncCancel::new(42).build().user_data(0);
    // SAFETY: carries no pointers.
    unsafe { ring.submission().push(&cancel).expect("sq room") };
    let mut done = false;
    for _ in 0..10 {
        if wait(&mut ring)
            .iter()
            .any(|c| c.user_data() == 42 && !cqueue::more(c.flags()))
        {
            done = true;
            break;
        }
    }
    assert!(done, "the cancelled receive must complete");
}

#[test]
fn op_boxes_keep_their_address() {
    let mut slab = OpSlab::default();
    let remote = SocketAddr::from(([127, 0, 0, 1], 9));
    let (key, op) = slab.insert(ops::udp_send(remote, b"payload".to_vec()));
    let hdr = ops::link_udp_send(op).expect("a udp send");
    let op_addr = op as *const Op;
    for i in 0..1000 {
        slab.insert(ops::udp_send(remote, vec![i as u8]));
    }
    let again = slab.remove(key).expect("still stored");
    assert_eq!(
        &*again as *const Op, op_addr,
        "the kernel's pointers stay valid"
    );
    // The msghdr still points into the same box at the same bytes.
    if let Op::UdpSend { hdr: h, buf, .. } = &*again {
        assert_eq!(h as *const libc::msghdr, hdr);
        // SAFETY: msg_iov points at the iovec inside this box, which is alive.
        let iov = unsafe { &*h.msg_iov };
        assert_eq!(iov.iov_base as *const u8, buf.as_ptr());
        assert_eq!(iov.iov_len, buf.len());
    } else {
        panic!("wrong op kind");
    }
    assert_eq!(slab.len(), 1000);
}
