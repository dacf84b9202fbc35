//! Thread-per-core I/O engine of mgw.
//!
//! Each worker is one OS thread with its own sockets (SO_REUSEPORT, so the kernel spreads
//! datagrams and connections), its own io_uring ring or epoll instance, and its own
//! [`Handler`], which the sans-IO protocol code implements. The engine only moves bytes:
//! UDP datagrams and framed TCP messages in, the handler's [`Outbox`] out, once per loop turn.
//!
//! ```no_run
//! use std::time::Instant;
//! use mgw_engine::{Engine, EngineConfig, Handler, ListenAddr, Outbox, Peer};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_message(&mut self, msg: &[u8], peer: Peer, _: Instant, out: &mut Outbox) {
//!         out.send(peer, msg);
//!     }
//!     fn on_stream_error(&mut self, _: &[u8], _: mgw_core::sip::framing::FrameError, _: Peer, _: Instant, _: &mut Outbox) {}
//!     fn next_deadline(&self) -> Option<Instant> { None }
//!     fn on_timer(&mut self, _: Instant, _: &mut Outbox) {}
//! }
//!
//! let config = EngineConfig {
//!     listen: vec![ListenAddr::udp("127.0.0.1:5060".parse().expect("address"))],
//!     ..EngineConfig::default()
//! };
//! let engine = Engine::start(config, |_worker| Echo).expect("engine");
//! println!("running on {}", engine.backend());
//! engine.shutdown();
//! ```

mod config;
mod engine;
mod epoll;
mod error;
mod handler;
mod mailbox;
pub mod media;
mod outbox;
mod peer;
mod pool;
mod select;
mod sockaddr;
mod sockets;
mod stats;
mod tcp;
mod token;
mod uring;
mod worker;

pub use config::{Backend, EngineConfig, ListenAddr, Transport, RECV_BUFFER_SIZE};
pub use engine::{Engine, EngineHandle};
pub use error::EngineError;
pub use handler::Handler;
pub use mailbox::{Mail, Mailbox, MailboxClosed};
pub use media::{
    Forward, MediaConfig, MediaEngine, MediaError, MediaHandle, MediaHandler, MediaStats,
    PortControl, MEDIA_MAX_PACKET,
};
pub use outbox::Outbox;
pub use peer::{ConnId, Peer};
pub use select::BACKEND_ENV;
pub use stats::WorkerStats;

/// Whether io_uring can be used here (ring setup, opcodes, multishot recvmsg with provided
/// buffers); `Err` says why not. `Backend::Auto` uses the same check.
pub fn io_uring_available() -> Result<(), String> {
    uring::probe()
}
