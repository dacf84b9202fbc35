//! Codecs and the transcoding steps between legs: G.711 A-law and u-law (with the direct
//! table conversion between them), G.722, G.726-32, Opus, and resampling between their rates.

pub mod g711;
pub mod g722;
pub mod g726;
pub mod opus;
pub mod resample;

#[cfg(test)]
pub(crate) mod test_signal;
