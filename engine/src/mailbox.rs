//! Cross-thread delivery into one worker: a queue plus an eventfd the worker's loop waits on.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub type Mail = Box<dyn Any + Send>;

pub(crate) struct Shared {
    queue: Mutex<VecDeque<Mail>>,
    /// Set by the first poster after the worker drained; later posters skip the eventfd write.
    notified: AtomicBool,
    stop: AtomicBool,
    closed: AtomicBool,
    wake: OwnedFd,
    worker: usize,
}

impl Shared {
    pub(crate) fn new(worker: usize) -> io::Result<Shared> {
        // Blocking on purpose: io_uring returns EAGAIN for reads on O_NONBLOCK files instead of
        // waiting, and the epoll backend only reads after readiness.
        // SAFETY: eventfd has no memory arguments; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Shared {
            queue: Mutex::new(VecDeque::new()),
            notified: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
            worker,
        })
    }

    pub(crate) fn eventfd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local; an eventfd write only fails on counter
        // overflow (then the worker is already awake) or on a closed fd (engine gone).
        let _ = unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Asks the worker to leave its loop.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Called by the worker after its eventfd fired (and was read): takes all pending mail.
    pub(crate) fn drain(&self, into: &mut VecDeque<Mail>) {
        self.notified.store(false, Ordering::SeqCst);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *q, into);
    }

    /// Called by the epoll worker when the eventfd is readable (io_uring reads it with an op).
    pub(crate) fn reset_eventfd(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live local; only called after readiness, so it does not
        // block.
        let _ = unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
    }
}

/// A handle to post messages to one worker; delivered through `Handler::on_mail` on that worker.
#[derive(Clone)]
pub struct Mailbox {
    pub(crate) shared: Arc<Shared>,
}

/// The engine was shut down; the mail is handed back.
pub struct MailboxClosed(pub Mail);

impl fmt::Debug for MailboxClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailboxClosed(..)")
    }
}

impl fmt::Display for MailboxClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mailbox closed: the engine was shut down; post to a running engine")
    }
}

impl std::error::Error for MailboxClosed {}

impl Mailbox {
    /// Queues `mail` and wakes the worker.
    pub fn post(&self, mail: Mail) -> Result<(), MailboxClosed> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(MailboxClosed(mail));
        }
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back(mail);
        }
        if !self.shared.notified.swap(true, Ordering::SeqCst) {
            self.shared.wake();
        }
        Ok(())
    }

    /// The worker this mailbox delivers to.
    pub fn worker(&self) -> usize {
        self.shared.worker
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox(worker {})", self.shared.worker)
    }
}
