//! Per-worker media counters: each worker writes only its own block (relaxed atomics), readers
//! on other threads take a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

crate::stats::counters! { MediaStats, MediaCounters, "media worker" {
    /// Datagrams on media ports handed to the handler.
    rx_packets,
    rx_bytes,
    /// Forwarded packets the kernel accepted.
    tx_packets,
    tx_bytes,
    /// io_uring: the multishot receive of a port ended because every buffer was in use (the
    /// datagrams wait in the socket until it is re-armed, or are dropped by the kernel if its
    /// queue overflows meanwhile).
    drops_no_buffer,
    /// Datagrams larger than `MEDIA_MAX_PACKET`, dropped.
    drops_truncated,
    /// Forwards from a port that is not open on this worker, dropped.
    drops_no_port,
    /// Forwards (or control replies) the kernel refused: no route, wrong address family, full
    /// socket buffer.
    send_errors,
    /// Receive errors other than "no buffer", and ports that could not be put into service.
    recv_errors,
    /// Further datagrams a handler queued beyond its in-place reply (`poll_extra`), sent by copy.
    extra_packets,
    /// Datagrams on the control socket.
    control_rx,
    /// Posted commands handed to the handler.
    commands,
    /// Panics caught around handler calls.
    handler_panics,
    /// Media ports open on this worker (a gauge).
    ports_open,
    loop_turns,
}}

impl MediaCounters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}
