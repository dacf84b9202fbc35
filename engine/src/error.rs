//! Why the engine could not start. Each message names the cause and what to do about it.

use std::fmt;
use std::io;

use crate::config::{Backend, ListenAddr};

#[derive(Debug)]
pub enum EngineError {
    /// A configuration value is unusable.
    Config { what: String },
    /// A listen address could not be bound.
    Bind {
        listen: ListenAddr,
        source: io::Error,
    },
    /// A socket could not be created or configured.
    Socket {
        listen: ListenAddr,
        step: &'static str,
        source: io::Error,
    },
    /// io_uring was required (`Backend::IoUring` or `MGW_IO_BACKEND=io_uring`) but cannot be used.
    IoUringUnavailable { reason: String },
    /// A worker could not set up its backend (ring, epoll instance, eventfd).
    WorkerSetup {
        worker: usize,
        backend: Backend,
        source: io::Error,
    },
    /// The OS refused to start a worker thread.
    Spawn { worker: usize, source: io::Error },
    /// The handler factory panicked for a worker.
    FactoryPanicked { worker: usize, message: String },
}

fn describe_bind(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "address in use (another process or socket holds it; stop it or choose another port)".into(),
        Some(libc::EADDRNOTAVAIL) => "address not available on this host (use an address of a local interface, or 0.0.0.0 / [::])".into(),
        Some(libc::EACCES) => "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into(),
        Some(libc::EAFNOSUPPORT) => "address family not supported (is IPv6 disabled on this host?)".into(),
        _ => format!("{e}"),
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Config { what } => write!(f, "invalid engine configuration: {what}"),
            EngineError::Bind { listen, source } => {
                write!(f, "{listen}: {}", describe_bind(source))
            }
            EngineError::Socket { listen, step, source } => write!(
                f,
                "{listen}: {step} failed: {source} (check the address family and socket limits, ulimit -n)"
            ),
            EngineError::IoUringUnavailable { reason } => write!(
                f,
                "io_uring unavailable: {reason} (use Backend::Epoll / MGW_IO_BACKEND=epoll, or allow io_uring: sysctl kernel.io_uring_disabled=0, container seccomp profile)"
            ),
            EngineError::WorkerSetup { worker, backend, source } => write!(
                f,
                "worker {worker}: {backend} setup failed: {source} (raise RLIMIT_MEMLOCK / ulimit -n, or lower workers or recv_buffers)"
            ),
            EngineError::Spawn { worker, source } => write!(
                f,
                "worker {worker}: cannot start thread: {source} (lower the worker count or raise the thread limit)"
            ),
            EngineError::FactoryPanicked { worker, message } => write!(
                f,
                "worker {worker}: the handler factory panicked: {message} (fix the factory; the engine was not started)"
            ),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Bind { source, .. }
            | EngineError::Socket { source, .. }
            | EngineError::WorkerSetup { source, .. }
            | EngineError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_names_address_and_cause() {
        let e = EngineError::Bind {
            listen: ListenAddr::udp("127.0.0.1:5060".parse().expect("addr")),
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        let s = e.to_string();
        assert!(s.starts_with("udp:127.0.0.1:5060: address in use"), "{s}");
    }
}
