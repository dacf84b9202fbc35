//! What the engine is asked to do: which backend, how many workers, which addresses.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The I/O mechanism the workers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// io_uring when the kernel and the sandbox allow it, else epoll. The environment variable
    /// `MGW_IO_BACKEND=epoll|io_uring` overrides the choice (so CI can run both).
    #[default]
    Auto,
    IoUring,
    Epoll,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl ListenAddr {
    pub fn udp(addr: SocketAddr) -> Self {
        ListenAddr {
            transport: Transport::Udp,
            addr,
        }
    }
    pub fn tcp(addr: SocketAddr) -> Self {
        ListenAddr {
            transport: Transport::Tcp,
            addr,
        }
    }
}

/// Written as `udp:127.0.0.1:5060` / `tcp:[::1]:5060`, the form error messages use.
impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// One OS thread per worker, each with its own sockets and ring.
    pub workers: usize,
    pub backend: Backend,
    pub listen: Vec<ListenAddr>,
    /// Connections without traffic for this long are closed.
    pub tcp_idle_timeout: Duration,
    /// Per worker; connections accepted beyond it are closed at once.
    pub tcp_max_connections: usize,
    /// Receive buffers per worker, each [`RECV_BUFFER_SIZE`] bytes. io_uring needs a power of
    /// two, so other values are rounded up (at most 32768).
    pub recv_buffers: u16,
    /// Pin worker i to CPU i % ncpu.
    pub pin_workers: bool,
}

/// Size of one receive buffer: the largest SIP message (`mgw_core::sip::MAX_MESSAGE_SIZE`); any
/// UDP datagram fits, so truncation only happens for oversized input.
pub const RECV_BUFFER_SIZE: usize = mgw_core::sip::MAX_MESSAGE_SIZE;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: Backend::Auto,
            listen: Vec::new(),
            tcp_idle_timeout: Duration::from_secs(600),
            tcp_max_connections: 4096,
            recv_buffers: 512,
            pin_workers: false,
        }
    }
}
