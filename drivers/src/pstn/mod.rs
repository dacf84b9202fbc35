//! The simulated PSTN exchange at the far end of a trunk: its subscribers' behaviour.
//!
//! The ISDN driver's network side talks Q.931 with the gateway and asks an [`Exchange`] what the
//! world beyond does: whether a called number rings, answers, is busy or does not exist, what the
//! answering party sends back, and when PSTN subscribers call the gateway's numbers. The
//! exchange knows nothing of messages or channels; it sees calls by id and answers with
//! [`ExchangeAction`]s.
//!
//! Like every driver part it is sans-IO: commands carry an explicit `now`, actions and audio
//! are polled, and [`Exchange::handle_timeout`] runs what is due. Given the same seed and the
//! same inputs at the same instants it does exactly the same thing, down to the millisecond;
//! the seed only varies the routing delays and the draws of [`Behaviour::Weighted`] numbers.
//!
//! Ids: the gateway names the calls it offers; inward calls get ids with
//! [`INWARD_CALL_BIT`] set, so the gateway's own ids must stay below 2^31.
//!
//! Which number does what is an [`ExchangeConfig`]; [`ExchangeConfig::demo`] lists the
//! demonstration numbers. A [`Script`] makes PSTN parties dial in, answer and hang up on cue.

mod audio;
mod config;
mod exchange;
mod rng;
mod script;

pub use audio::{FRAME_SAMPLES, MAX_ECHO_DELAY_FRAMES, MAX_TONE_HZ, TONE_AMPLITUDE};
pub use config::{Behaviour, CallAudio, Congestion, ExchangeConfig, NumberRule};
pub use exchange::{CallPhase, Exchange, ExchangeAction, INWARD_CALL_BIT};
pub use script::{Script, ScriptAction, ScriptStep};
