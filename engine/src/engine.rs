//! Starting and stopping the workers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use crate::config::{Backend, EngineConfig, ListenAddr};
use crate::epoll::EpollWorker;
use crate::error::EngineError;
use crate::handler::Handler;
use crate::mailbox::{self, Mailbox};
use crate::sockets::{self, WorkerSockets};
use crate::stats::{Counters, WorkerStats};
use crate::uring::UringWorker;
use crate::worker::{Core, Limits};

pub struct Engine;

type Worker = crate::pool::Worker<Counters>;

/// The running engine. Dropping it shuts the workers down like [`shutdown`](Self::shutdown).
pub struct EngineHandle {
    backend: Backend,
    local: Vec<ListenAddr>,
    workers: Vec<Worker>,
}

use crate::pool::MAX_WORKERS;

fn validate(config: &EngineConfig) -> Result<u16, EngineError> {
    if config.workers == 0 || config.workers > MAX_WORKERS {
        return Err(EngineError::Config {
            what: format!(
                "workers = {}: use 1 to {MAX_WORKERS} (one per core is the norm)",
                config.workers
            ),
        });
    }
    if config.recv_buffers == 0 {
        return Err(EngineError::Config {
            what: "recv_buffers = 0: each worker needs receive buffers (512 is the default)".into(),
        });
    }
    // io_uring buffer rings hold a power of two, at most 32768.
    Ok(config
        .recv_buffers
        .checked_next_power_of_two()
        .unwrap_or(32768)
        .min(32768))
}

/// Pins the calling thread to the `index % n`-th CPU this process may run on.
pub(crate) fn pin_current_thread(index: usize) {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is empty.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: passes a live cpu_set_t of the size given.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) }
        != 0
    {
        return;
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
        .collect();
    if cpus.is_empty() {
        return;
    }
    let cpu = cpus[index % cpus.len()];
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE; the set is live for the call.
    let r = unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        eprintln!(
            "mgw-engine: worker {index}: cannot pin to cpu {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Engine {
    /// Binds every listen address once per worker, picks the backend, and starts the workers;
    /// each calls `factory(worker_index)` on its own thread to build its handler. Returns when
    /// every worker is ready (or the first error, after stopping the others).
    pub fn start<H, F>(config: EngineConfig, factory: F) -> Result<EngineHandle, EngineError>
    where
        H: Handler + 'static,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let recv_buffers = validate(&config)?;
        let backend = crate::select::select(config.backend)?;
        let (sockets, local) = sockets::bind_all(&config.listen, config.workers)?;
        let factory = Arc::new(factory);
        let limits = Arc::new(Limits {
            idle_timeout: config.tcp_idle_timeout,
            max_connections: config.tcp_max_connections,
        });
        let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(), EngineError>)>();
        let mut handle = EngineHandle {
            backend,
            local,
            workers: Vec::with_capacity(config.workers),
        };
        for (index, socks) in sockets.into_iter().enumerate() {
            let mail = Arc::new(mailbox::Shared::new(index).map_err(|source| {
                EngineError::WorkerSetup {
                    worker: index,
                    backend,
                    source,
                }
            })?);
            let stats = Arc::new(Counters::default());
            let job = WorkerJob {
                index,
                backend,
                sockets: socks,
                mail: mail.clone(),
                stats: stats.clone(),
                limits: limits.clone(),
                recv_buffers,
                pin: config.pin_workers,
                ready: ready_tx.clone(),
            };
            let factory = factory.clone();
            let thread = std::thread::Builder::new()
                .name(format!("mgw-worker-{index}"))
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
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => return Err(e),
                // A worker died without reporting: it panicked outside the handler.
                Err(_) => {
                    return Err(EngineError::FactoryPanicked {
                        worker: 0,
                        message: "a worker thread exited during startup".into(),
                    })
                }
            }
        }
        Ok(handle)
    }
}

struct WorkerJob {
    index: usize,
    backend: Backend,
    sockets: WorkerSockets,
    mail: Arc<mailbox::Shared>,
    stats: Arc<Counters>,
    limits: Arc<Limits>,
    recv_buffers: u16,
    pin: bool,
    ready: mpsc::Sender<(usize, Result<(), EngineError>)>,
}

impl WorkerJob {
    fn run<H: Handler, F: Fn(usize) -> H>(self, factory: &F) {
        let index = self.index;
        if self.pin {
            pin_current_thread(index);
        }
        let handler = match catch_unwind(AssertUnwindSafe(|| factory(index))) {
            Ok(h) => h,
            Err(p) => {
                let message = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let _ = self.ready.send((
                    index,
                    Err(EngineError::FactoryPanicked {
                        worker: index,
                        message,
                    }),
                ));
                return;
            }
        };
        let udp_locals = self.sockets.udp.iter().map(|b| b.local).collect();
        let core = Core::new(
            index,
            handler,
            self.stats,
            self.mail,
            &self.limits,
            udp_locals,
        );
        let setup_err = |source| EngineError::WorkerSetup {
            worker: index,
            backend: self.backend,
            source,
        };
        match self.backend {
            Backend::Epoll => match EpollWorker::new(core, self.sockets, self.recv_buffers) {
                Ok(w) => {
                    let _ = self.ready.send((index, Ok(())));
                    w.run();
                }
                Err(e) => {
                    let _ = self.ready.send((index, Err(setup_err(e))));
                }
            },
            _ => match UringWorker::new(core, self.sockets, self.recv_buffers) {
                Ok(w) => {
                    let _ = self.ready.send((index, Ok(())));
                    w.run();
                }
                Err(e) => {
                    let _ = self.ready.send((index, Err(setup_err(e))));
                }
            },
        }
    }
}

impl EngineHandle {
    /// The backend actually running (never `Auto`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The bound addresses, with port 0 resolved, in the order they were configured.
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.local.clone()
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// A mailbox of worker `worker`.
    ///
    /// # Panics
    /// If `worker` is not below [`workers`](Self::workers).
    pub fn mailbox(&self, worker: usize) -> Mailbox {
        crate::pool::mailbox(&self.workers, worker, "worker")
    }

    pub fn stats(&self) -> Vec<WorkerStats> {
        self.workers.iter().map(|w| w.stats.snapshot()).collect()
    }

    /// Stops every worker, waits for them, and closes all sockets.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        crate::pool::stop(&mut self.workers, "worker");
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
