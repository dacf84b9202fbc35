//! What the SIP engine and the media engine share about their worker threads: each worker's
//! thread, mailbox and counters, finding a worker's mailbox, and stopping them all.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::mailbox::{self, Mailbox};

/// Largest worker count: the worker index is 16 bits of every `ConnId`.
pub(crate) const MAX_WORKERS: usize = 1 << 16;

pub(crate) struct Worker<C> {
    pub(crate) thread: Option<JoinHandle<()>>,
    pub(crate) mail: Arc<mailbox::Shared>,
    pub(crate) stats: Arc<C>,
}

/// The mailbox of worker `index`; `what` names the pool in the panic message.
///
/// # Panics
/// If `index` is not below the number of workers.
pub(crate) fn mailbox<C>(workers: &[Worker<C>], index: usize, what: &str) -> Mailbox {
    let n = workers.len();
    let w = workers
        .get(index)
        .unwrap_or_else(|| panic!("{what} {index}: the engine has {n} workers"));
    Mailbox {
        shared: w.mail.clone(),
    }
}

/// Asks every worker to stop, then waits for each; idempotent.
pub(crate) fn stop<C>(workers: &mut [Worker<C>], what: &str) {
    for w in workers.iter() {
        w.mail.close();
        w.mail.request_stop();
    }
    for (i, w) in workers.iter_mut().enumerate() {
        if let Some(t) = w.thread.take() {
            if t.join().is_err() {
                eprintln!("mgw-engine: {what} {i} had panicked outside the handler");
            }
        }
    }
}
