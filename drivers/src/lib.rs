//! Line drivers: what a line or endpoint technology (an ISDN trunk, a DECT base station)
//! provides to the call switch and what it gets back, and the simulated hardware behind them.
//!
//! Everything here is sans-IO: a driver takes commands and an explicit `now`, and its
//! events, audio frames and next deadline are polled. The gateway's driver host turns those into
//! SIP dialogs and RTP streams towards the switch (docs/drivers.md).

pub mod dect;
pub mod isdn;
pub mod iwf;
pub mod line;
pub mod pstn;

pub use line::{
    AudioCodec, CallRef, Cause, Driver, DriverStatus, Fault, LineEvent, Party, Progress, Setup,
    SimCommand,
};
