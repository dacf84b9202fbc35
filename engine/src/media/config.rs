//! What the media engine is asked to do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::Backend;

/// Size of one receive buffer. Under io_uring the buffer also holds the recvmsg header and the
/// source address in front of the payload, which leaves [`MEDIA_MAX_PACKET`] for the packet.
pub const MEDIA_BUFFER_SIZE: usize = 2048;

/// Largest packet received whole (bigger ones are dropped as truncated, `drops_truncated`):
/// the buffer minus `io_uring_recvmsg_out` (16 bytes) and a `sockaddr_in6` (28 bytes). Both
/// backends use the same limit. RTP over an Ethernet MTU needs at most 1472.
pub const MEDIA_MAX_PACKET: usize = MEDIA_BUFFER_SIZE - 16 - crate::sockaddr::NAME_LEN;

#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// One OS thread per worker, each with its own ports, ring and handler.
    pub workers: usize,
    pub backend: Backend,
    /// Address the media ports are bound to (`PortControl::open` binds `bind_ip:port`). An
    /// unspecified IPv6 address (`::`) gives dual-stack sockets.
    pub bind_ip: IpAddr,
    /// A UDP control socket (rtpengine ng), served by worker 0.
    pub control: Option<SocketAddr>,
    /// Receive buffers per worker, each [`MEDIA_BUFFER_SIZE`] bytes (lazily backed memory).
    /// io_uring needs a power of two, so other values are rounded up (at most 32768).
    pub recv_buffers: u16,
    /// Pin worker i to CPU i % ncpu.
    pub pin_workers: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: Backend::Auto,
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            control: None,
            recv_buffers: 1024,
            pin_workers: false,
        }
    }
}
