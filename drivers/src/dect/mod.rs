//! DECT: base stations (fixed parts) connected to the gateway and the cordless handsets
//! subscribed to them, all simulated in virtual time.
//!
//! A handset is subscribed to one base by its IPUI and serves one number. The switch reaches
//! it with [`crate::Driver::setup`]: the base pages it, it rings and (by itself or on
//! [`crate::SimCommand::Answer`]) answers. A handset dials with [`crate::SimCommand::Dial`],
//! which the switch sees as [`crate::LineEvent::Incoming`]. Connected calls carry G.726-32 or,
//! when base and handset are wideband, G.722, framed into 20 ms on the base's own drifting
//! clock. What is modelled and what is not: docs/drivers.md, "DECT base stations".

mod audio;
mod clock;
mod config;
mod driver;

pub use audio::{JITTER_CAPACITY, JITTER_PREFILL, TONE_AMPLITUDE};
pub use config::{
    BaseConfig, DectConfig, DectConfigError, HandsetAudio, HandsetConfig, MAX_AUTO_ANSWER_MS,
    MAX_CHANNELS, MAX_CLOCK_PPM, MAX_TONE_HZ,
};
pub use driver::{
    DectDriver, LINK_TIMEOUT_MS, MAX_CATCHUP_AIR_FRAMES, MAX_QUEUED_FRAMES, PAGING_MAX_MS,
    PAGING_MIN_MS,
};
