//! Sans-IO protocol core of mgw.
//!
//! Nothing in this crate touches a socket or a clock: parsers take bytes, state machines take an
//! explicit `now` and return what should be sent. The `engine` crate owns the I/O.

pub mod admission;
pub mod auth;
pub mod call;
pub mod cidr;
pub mod directory;
pub mod dns;
pub mod endpoint;
pub mod licence;
pub mod registrar;
pub mod sip;
pub mod transaction;
pub mod ua;
pub mod uas;
