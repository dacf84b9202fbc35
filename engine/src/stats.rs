//! Per-worker counters. Each worker writes only its own block (relaxed atomics, no contention);
//! readers on other threads take a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Declares a snapshot struct `$snap` of plain `u64`s and its live twin `$live` of relaxed
/// atomics with a `snapshot()`, from one list of counter names (shared by the SIP and the media
/// workers' counters).
macro_rules! counters {
    ($snap:ident, $live:ident, $what:literal { $( $(#[$doc:meta])* $name:ident ),* $(,)? }) => {
        #[doc = concat!("A snapshot of one ", $what, "'s counters.")]
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $snap {
            $( $(#[$doc])* pub $name: u64, )*
        }

        #[derive(Default)]
        pub(crate) struct $live {
            $( pub(crate) $name: std::sync::atomic::AtomicU64, )*
        }

        impl $live {
            pub(crate) fn snapshot(&self) -> $snap {
                $snap { $( $name: self.$name.load(std::sync::atomic::Ordering::Relaxed), )* }
            }
        }
    };
}

pub(crate) use counters;

counters! { WorkerStats, Counters, "worker" {
    /// UDP datagrams handed to the handler.
    udp_rx_datagrams,
    udp_rx_bytes,
    /// UDP datagrams the kernel accepted for sending.
    udp_tx_datagrams,
    udp_tx_bytes,
    /// Framed TCP messages handed to the handler.
    tcp_rx_messages,
    tcp_rx_bytes,
    /// Messages queued on TCP connections (including keep-alive pongs).
    tcp_tx_messages,
    tcp_tx_bytes,
    tcp_accepted,
    /// Connections opened by the engine for a send without a connection.
    tcp_connected,
    /// Connections currently open (a gauge).
    tcp_open,
    tcp_closed,
    /// Accepted connections closed at once because `tcp_max_connections` was reached.
    tcp_rejected,
    /// Connections closed by the idle timeout.
    tcp_idle_closed,
    /// Streams that could not be framed (the handler's `on_stream_error` was called).
    tcp_stream_errors,
    /// io_uring: multishot receives ended because every provided buffer was in use.
    drops_no_buffer,
    /// Datagrams larger than a receive buffer, dropped.
    drops_truncated,
    /// Messages that could not be sent (socket error, no route, connect failure, full queue).
    send_errors,
    /// Receive errors other than "no buffer".
    recv_errors,
    /// Panics caught around handler calls.
    handler_panics,
    mail_received,
    loop_turns,
}}

impl Counters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}
