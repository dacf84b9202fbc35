//! The provided-buffer ring (IORING_REGISTER_PBUF_RING): memory the kernel picks receive buffers
//! from, so a multishot receive needs no buffer of its own per socket or per datagram.
//!
//! Ownership protocol: a buffer belongs to the kernel from the moment its entry is published
//! (tail advanced past it) until a CQE names its buffer id; then it belongs to us until we write
//! it back into the ring with [`BufRing::recycle`] and publish. We only read a buffer in between.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The kernel's `struct io_uring_buf`. We write entries through raw field pointers of this
/// mirror instead of `&mut BufRingEntry`, because entry 0's `resv` doubles as the ring tail that
/// the kernel reads concurrently, and a `&mut` over memory another party reads is not allowed.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    /// In entry 0: the tail.
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RawBuf>() == std::mem::size_of::<BufRingEntry>());

/// An anonymous private mapping, page aligned (the ring must be), zero filled and lazily
/// backed, so 512 x 64 KiB buffers cost memory only where datagrams actually landed.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh anonymous mapping aliases nothing; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped. The owner guarantees the kernel no longer
        // uses it (see `BufRing`'s users: dropped only after every operation has completed).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

pub(crate) struct BufRing {
    ring: Mapping,
    bufs: Mapping,
    entries: u16,
    buf_size: usize,
    /// Our copy of the tail; published to the kernel by `publish`.
    tail: u16,
    published: u16,
    pub bgid: u16,
}

impl BufRing {
    /// `entries` must be a power of two (at most 32768).
    pub(crate) fn new(entries: u16, buf_size: usize, bgid: u16) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "provided buffer count must be a power of two up to 32768",
            ));
        }
        let ring = Mapping::new(usize::from(entries) * std::mem::size_of::<BufRingEntry>())?;
        let bufs = Mapping::new(usize::from(entries) * buf_size)?;
        Ok(BufRing {
            ring,
            bufs,
            entries,
            buf_size,
            tail: 0,
            published: 0,
            bgid,
        })
    }

    /// Registers the ring with the kernel and hands it every buffer.
    ///
    /// # Safety
    /// `self` must stay alive (not dropped, not moved out of its mappings, which are heap
    /// memory anyway) until the buffer group is unregistered or the io_uring instance is gone
    /// and no operation that selected a buffer from this group is still in flight.
    pub(crate) unsafe fn register(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: the ring mapping is page aligned, sized for `entries` entries, and lives as
        // long as the caller promises above.
        unsafe {
            submitter.register_buf_ring_with_flags(
                self.ring.ptr.as_ptr() as u64,
                self.entries,
                self.bgid,
                0,
            )?;
        }
        for bid in 0..self.entries {
            self.recycle(bid);
        }
        self.publish();
        Ok(())
    }

    fn base(&self) -> *mut RawBuf {
        self.ring.ptr.as_ptr().cast::<RawBuf>()
    }

    /// The received bytes of buffer `bid`.
    ///
    /// # Safety
    /// `bid` must come from a CQE of this group (the kernel has finished writing it and will not
    /// touch it again), not yet recycled, and `len` must be the CQE's result.
    pub(crate) unsafe fn data(&self, bid: u16, len: usize) -> &[u8] {
        let bid = usize::from(bid) % usize::from(self.entries);
        let len = len.min(self.buf_size);
        // SAFETY: inside the buffer mapping; the caller guarantees the kernel does not write
        // this buffer while the returned borrow lives (it is not in the ring), and `recycle`
        // needs `&mut self`, so the borrow ends before the buffer can go back.
        unsafe { std::slice::from_raw_parts(self.bufs.ptr.as_ptr().add(bid * self.buf_size), len) }
    }

    /// The received bytes of buffer `bid`, writable: the media relay rewrites a packet in place
    /// and then sends it from this same memory (see `crate::media`).
    ///
    /// # Safety
    /// As for [`data`](Self::data); besides, no send from this buffer may be in flight (the
    /// kernel would read it while we write).
    pub(crate) unsafe fn data_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let bid = usize::from(bid) % usize::from(self.entries);
        let len = len.min(self.buf_size);
        // SAFETY: inside the buffer mapping. The caller guarantees the kernel neither writes
        // (the buffer is not in the ring) nor reads (no send in flight) this buffer while the
        // borrow lives; other buffers are disjoint, and `&mut self` rules out a second borrow
        // through this ring, including `recycle`.
        unsafe {
            std::slice::from_raw_parts_mut(self.bufs.ptr.as_ptr().add(bid * self.buf_size), len)
        }
    }

    /// Where buffer `bid` starts: a send straight from the buffer points the kernel here.
    pub(crate) fn addr(&self, bid: u16) -> *mut u8 {
        let bid = usize::from(bid) % usize::from(self.entries);
        self.bufs.ptr.as_ptr().wrapping_add(bid * self.buf_size)
    }

    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// Gives buffer `bid` back to the kernel (visible after `publish`).
    pub(crate) fn recycle(&mut self, bid: u16) {
        // A bid outside the group would hand the kernel memory past our mapping.
        let bid = bid % self.entries;
        let addr = self.bufs.ptr.as_ptr() as u64 + u64::from(bid) * self.buf_size as u64;
        let len = self.buf_size as u32;
        let i = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `i` < entries, so the entry is inside the ring mapping. The slot at our
        // unpublished tail is not read by the kernel until `publish`, and only the addr/len/bid
        // fields are written, never `resv` (the tail the kernel may be reading).
        unsafe {
            let e = self.base().add(i);
            std::ptr::addr_of_mut!((*e).addr).write(addr);
            std::ptr::addr_of_mut!((*e).len).write(len);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes recycled buffers visible to the kernel.
    pub(crate) fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        // SAFETY: the tail is the `resv` field of entry 0, inside the ring mapping and 2-byte
        // aligned (AtomicU16 has u16's layout); the kernel reads it concurrently, hence the
        // atomic release store, which also orders the entry writes before it.
        unsafe {
            let tail = std::ptr::addr_of_mut!((*self.base()).resv).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
        self.published = self.tail;
    }
}
