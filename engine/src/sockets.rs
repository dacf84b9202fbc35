//! Socket setup: one SO_REUSEPORT socket per listen address and worker, so the kernel spreads
//! datagrams and connections over the workers without a shared queue.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::{ListenAddr, Transport};
use crate::error::EngineError;

/// Large enough that a signalling burst is not dropped while a worker is busy; the kernel clamps
/// it to net.core.rmem_max.
const UDP_RCVBUF: usize = 4 * 1024 * 1024;
const LISTEN_BACKLOG: i32 = 1024;

pub(crate) struct Bound {
    pub socket: Socket,
    pub local: SocketAddr,
}

#[derive(Default)]
pub(crate) struct WorkerSockets {
    pub udp: Vec<Bound>,
    pub tcp: Vec<Bound>,
}

fn domain(addr: &SocketAddr) -> Domain {
    if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

fn new_socket(listen: &ListenAddr, reuse_port: bool) -> Result<Socket, EngineError> {
    let step = |step: &'static str| {
        move |source: io::Error| EngineError::Socket {
            listen: *listen,
            step,
            source,
        }
    };
    let (ty, proto) = match listen.transport {
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
    };
    let s = Socket::new(domain(&listen.addr), ty, Some(proto)).map_err(step("socket"))?;
    if listen.addr.is_ipv6() {
        // v4 and v6 are separate listen entries; a dual-stack socket would collide with the v4 one.
        s.set_only_v6(true).map_err(step("IPV6_V6ONLY"))?;
    }
    if listen.transport == Transport::Tcp {
        // Restarting must not wait for TIME_WAIT connections of the previous run.
        s.set_reuse_address(true).map_err(step("SO_REUSEADDR"))?;
    }
    if reuse_port {
        s.set_reuse_port(true).map_err(step("SO_REUSEPORT"))?;
    }
    Ok(s)
}

fn bind_one(
    listen: &ListenAddr,
    addr: SocketAddr,
    reuse_port: bool,
) -> Result<Socket, EngineError> {
    let s = new_socket(listen, reuse_port)?;
    s.bind(&SockAddr::from(addr))
        .map_err(|source| EngineError::Bind {
            listen: *listen,
            source,
        })?;
    match listen.transport {
        Transport::Udp => {
            let _ = s.set_recv_buffer_size(UDP_RCVBUF);
        }
        Transport::Tcp => s
            .listen(LISTEN_BACKLOG)
            .map_err(|source| EngineError::Socket {
                listen: *listen,
                step: "listen",
                source,
            })?,
    }
    Ok(s)
}

/// Binds every listen address once per worker. Returns the sockets per worker and the bound
/// addresses (port 0 resolved; all workers share the port the first bind got).
pub(crate) fn bind_all(
    listen: &[ListenAddr],
    workers: usize,
) -> Result<(Vec<WorkerSockets>, Vec<ListenAddr>), EngineError> {
    let mut per_worker: Vec<WorkerSockets> =
        (0..workers).map(|_| WorkerSockets::default()).collect();
    let mut resolved = Vec::with_capacity(listen.len());
    for l in listen {
        if l.addr.port() != 0 {
            // SO_REUSEPORT would let us silently share the port with another mgw of the same
            // user; an exclusive trial bind turns that into the "address in use" it should be.
            drop(bind_one(l, l.addr, false)?);
        }
        let first = bind_one(l, l.addr, true)?;
        let local = first
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(l.addr);
        let mut sockets = vec![first];
        for _ in 1..workers {
            sockets.push(bind_one(l, local, true)?);
        }
        for (w, socket) in sockets.into_iter().enumerate() {
            let b = Bound { socket, local };
            match l.transport {
                Transport::Udp => per_worker[w].udp.push(b),
                Transport::Tcp => per_worker[w].tcp.push(b),
            }
        }
        resolved.push(ListenAddr {
            transport: l.transport,
            addr: local,
        });
    }
    Ok((per_worker, resolved))
}

/// Local and remote address of a connected socket.
pub(crate) fn conn_addrs(s: &Socket) -> Option<(SocketAddr, SocketAddr)> {
    let local = s.local_addr().ok()?.as_socket()?;
    let remote = s.peer_addr().ok()?.as_socket()?;
    Some((local, remote))
}

/// A socket for connecting to `remote` (connect on demand).
pub(crate) fn connect_socket(remote: &SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(domain(remote), Type::STREAM, Some(Protocol::TCP))?;
    s.set_tcp_nodelay(true)?;
    Ok(s)
}
