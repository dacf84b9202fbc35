//! Starting and stopping the media workers.

use std::any::Any;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use socket2::Socket;

use super::config::MediaConfig;
use super::epoll::EpollMediaWorker;
use super::ports::PortControl;
use super::stats::{MediaCounters, MediaStats};
use super::uring::UringMediaWorker;
use super::worker::MediaCore;
use super::MediaHandler;
use crate::config::{Backend, ListenAddr};
use crate::error::EngineError;
use crate::mailbox::{self, Mailbox, MailboxClosed};

/// Why the media engine could not start (the same causes as the SIP engine's).
pub type MediaError = EngineError;

pub struct MediaEngine;

type Worker = crate::pool::Worker<MediaCounters>;

/// The running media engine. Dropping it shuts the workers down like
/// [`shutdown`](Self::shutdown).
pub struct MediaHandle {
    backend: Backend,
    control: Option<SocketAddr>,
    workers: Vec<Worker>,
}

use crate::pool::MAX_WORKERS;

fn validate(config: &MediaConfig) -> Result<u16, EngineError> {
    if config.workers == 0 || config.workers > MAX_WORKERS {
        return Err(EngineError::Config {
            what: format!(
                "media workers = {}: use 1 to {MAX_WORKERS} (one per core is the norm)",
                config.workers
            ),
        });
    }
    if config.recv_buffers == 0 {
        return Err(EngineError::Config {
            what: "media recv_buffers = 0: each worker needs receive buffers (1024 is the default)"
                .into(),
        });
    }
    // io_uring buffer rings hold a power of two, at most 32768.
    Ok(config
        .recv_buffers
        .checked_next_power_of_two()
        .unwrap_or(32768)
        .min(32768))
}

type Ready = mpsc::Sender<Result<(), EngineError>>;

impl MediaEngine {
    /// Picks the backend, binds the control socket (if any), and starts the workers; each calls
    /// `factory(worker_index)` on its own thread to build its handler. Returns when every worker
    /// is ready (or the first error, after stopping the others).
    pub fn start<H, F>(config: MediaConfig, factory: F) -> Result<MediaHandle, MediaError>
    where
        H: MediaHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let recv_buffers = validate(&config)?;
        let backend = crate::select::select(config.backend)?;
        let (mut control, control_addr) = match config.control {
            None => (None, None),
            Some(addr) => {
                let (socks, local) = crate::sockets::bind_all(&[ListenAddr::udp(addr)], 1)?;
                let bound = socks
                    .into_iter()
                    .next()
                    .and_then(|w| w.udp.into_iter().next());
                let local = local.first().map_or(addr, |l| l.addr);
                (bound.map(|b| b.socket), Some(local))
            }
        };
        let factory = Arc::new(factory);
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut handle = MediaHandle {
            backend,
            control: control_addr,
            workers: Vec::with_capacity(config.workers),
        };
        for index in 0..config.workers {
            let mail = Arc::new(mailbox::Shared::new(index).map_err(|source| {
                EngineError::WorkerSetup {
                    worker: index,
                    backend,
                    source,
                }
            })?);
            let stats = Arc::new(MediaCounters::default());
            let job = Job {
                index,
                backend,
                bind_ip: config.bind_ip,
                control: if index == 0 { control.take() } else { None },
                mail: mail.clone(),
                stats: stats.clone(),
                recv_buffers,
                pin: config.pin_workers,
                ready: ready_tx.clone(),
            };
            let factory = factory.clone();
            let thread = std::thread::Builder::new()
                .name(format!("mgw-media-{index}"))
                .spawn(move || job.run(&*factory))
                .map_err(|source| EngineError::Spawn {
                    worker: index,
                    source,
                })?;
            handle.workers.push(Worker {
                thread: Some(thread),
                mail,
                stats,
            });
        }
        drop(ready_tx);
        for _ in 0..handle.workers.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(EngineError::FactoryPanicked {
                        worker: 0,
                        message: "a media worker thread exited during startup".into(),
                    })
                }
            }
        }
        Ok(handle)
    }
}

struct Job {
    index: usize,
    backend: Backend,
    bind_ip: std::net::IpAddr,
    control: Option<Socket>,
    mail: Arc<mailbox::Shared>,
    stats: Arc<MediaCounters>,
    recv_buffers: u16,
    pin: bool,
    ready: Ready,
}

impl Job {
    fn run<H: MediaHandler, F: Fn(usize) -> H>(self, factory: &F) {
        let index = self.index;
        if self.pin {
            crate::engine::pin_current_thread(index);
        }
        let handler = match catch_unwind(AssertUnwindSafe(|| factory(index))) {
            Ok(h) => h,
            Err(p) => {
                let message = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let _ = self.ready.send(Err(EngineError::FactoryPanicked {
                    worker: index,
                    message,
                }));
                return;
            }
        };
        let epoll = self.backend == Backend::Epoll;
        let ports = PortControl::new(self.bind_ip, epoll);
        let core = MediaCore::new(index, handler, ports, self.stats, self.mail);
        let setup_err = |source| EngineError::WorkerSetup {
            worker: index,
            backend: self.backend,
            source,
        };
        if epoll {
            match EpollMediaWorker::new(core, self.control, self.recv_buffers) {
                Ok(w) => {
                    let _ = self.ready.send(Ok(()));
                    w.run();
                }
                Err(e) => {
                    let _ = self.ready.send(Err(setup_err(e)));
                }
            }
        } else {
            match UringMediaWorker::new(core, self.control, self.recv_buffers) {
                Ok(w) => {
                    let _ = self.ready.send(Ok(()));
                    w.run();
                }
                Err(e) => {
                    let _ = self.ready.send(Err(setup_err(e)));
                }
            }
        }
    }
}

impl MediaHandle {
    /// The backend actually running (never `Auto`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The bound control socket address (port 0 resolved), if one was configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// Hands `cmd` to worker `worker`'s `on_command` (woken through its eventfd).
    ///
    /// # Panics
    /// If `worker` is not below [`workers`](Self::workers).
    pub fn post(&self, worker: usize, cmd: Box<dyn Any + Send>) -> Result<(), MailboxClosed> {
        self.mailbox(worker).post(cmd)
    }

    /// A cloneable handle for posting to worker `worker` from other threads.
    ///
    /// # Panics
    /// If `worker` is not below [`workers`](Self::workers).
    pub fn mailbox(&self, worker: usize) -> Mailbox {
        crate::pool::mailbox(&self.workers, worker, "media worker")
    }

    pub fn stats(&self) -> Vec<MediaStats> {
        self.workers.iter().map(|w| w.stats.snapshot()).collect()
    }

    /// Stops every worker, waits for them, and closes all sockets.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        crate::pool::stop(&mut self.workers, "media worker");
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
