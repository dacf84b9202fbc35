//! One connected call's audio as the air interface carries it: every 10 ms air frame the
//! handset plays half a 20 ms frame from the base's jitter buffer, the simulated person answers
//! (echo, tone or silence), and the handset's codec output is collected into the 20 ms frames
//! the switch receives. The codec runs in the handset, as in real DECT: the base passes the
//! G.726 or G.722 octets through between the air and the gateway.

use std::collections::VecDeque;

use mgw_media::codec::g722::{G722Decoder, G722Encoder};
use mgw_media::codec::g726::{G726Decoder, G726Encoder};

use super::config::HandsetAudio;
use crate::line::AudioCodec;

/// Frames the jitter buffer collects before it starts (or restarts after an underrun) to play:
/// enough to ride out one late frame from the switch.
pub const JITTER_PREFILL: usize = 2;

/// Frames it holds at most; beyond that the oldest is dropped, which is how the difference
/// between the switch's clock and the base's clock is absorbed when the switch runs faster.
pub const JITTER_CAPACITY: usize = 5;

/// Amplitude of a simulated handset's tone: about -12 dBFS, loud and clear of clipping.
pub const TONE_AMPLITUDE: f64 = 8000.0;

/// Most samples one air frame carries (10 ms at 16 kHz).
const MAX_AIR_SAMPLES: usize = 160;

enum Encoder {
    G726(G726Encoder),
    G722(Box<G722Encoder>),
}

enum Decoder {
    G726(G726Decoder),
    G722(Box<G722Decoder>),
}

/// The switch's frames on their way to the handset, played out on the base's clock.
#[derive(Debug, Default)]
pub struct JitterBuffer {
    frames: VecDeque<Vec<u8>>,
    /// Octets of the front frame already sent over the air.
    played: usize,
    playing: bool,
}

impl JitterBuffer {
    pub fn push(&mut self, frame: Vec<u8>) {
        if self.frames.len() >= JITTER_CAPACITY {
            self.frames.pop_front();
            self.played = 0;
        }
        self.frames.push_back(frame);
    }

    /// The next `n` octets for the air, `None` while filling up or after an underrun.
    pub fn pull(&mut self, n: usize) -> Option<Vec<u8>> {
        if !self.playing {
            if self.frames.len() < JITTER_PREFILL {
                return None;
            }
            self.playing = true;
        }
        let Some(front) = self.frames.front() else {
            self.playing = false;
            return None;
        };
        let end = (self.played + n).min(front.len());
        let out = front.get(self.played..end).unwrap_or_default().to_vec();
        self.played = end;
        if self.played >= front.len() {
            self.frames.pop_front();
            self.played = 0;
        }
        Some(out)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }
}

/// Audio state of one connected call.
pub struct CallAudio {
    codec: AudioCodec,
    person: HandsetAudio,
    encoder: Encoder,
    decoder: Decoder,
    jitter: JitterBuffer,
    uplink: Vec<u8>,
    /// Position in the tone's cycle, 0..1.
    tone_phase: f64,
    /// The base's next air frame (on its clock) this call has not yet been through.
    pub next_air: u64,
}

impl CallAudio {
    pub fn new(codec: AudioCodec, person: HandsetAudio, next_air: u64) -> CallAudio {
        let (encoder, decoder) = match codec {
            AudioCodec::G722 => (
                Encoder::G722(Box::new(G722Encoder::new())),
                Decoder::G722(Box::new(G722Decoder::new())),
            ),
            // The driver only connects calls in G.722 or G.726-32.
            _ => (
                Encoder::G726(G726Encoder::new()),
                Decoder::G726(G726Decoder::new()),
            ),
        };
        CallAudio {
            codec,
            person,
            encoder,
            decoder,
            jitter: JitterBuffer::default(),
            uplink: Vec::with_capacity(codec.frame_bytes()),
            tone_phase: 0.0,
            next_air,
        }
    }

    /// One 20 ms frame from the switch. Frames of the wrong size are dropped: they cannot be
    /// split into air frames, and a real base would reject the packet the same way.
    pub fn push_downlink(&mut self, frame: &[u8]) -> bool {
        if frame.len() != self.codec.frame_bytes() {
            return false;
        }
        self.jitter.push(frame.to_vec());
        true
    }

    pub fn jitter_len(&self) -> usize {
        self.jitter.len()
    }

    /// One air frame. `link_up` is false while the handset is out of range: what the base
    /// sends is lost, and the base fills the uplink with silence so that the switch keeps
    /// receiving frames at the line's pace. Returns a 20 ms frame every second air frame.
    pub fn air_frame(&mut self, link_up: bool) -> Option<Vec<u8>> {
        let samples = (self.codec.sample_rate() / 100) as usize;
        let octets = self.codec.frame_bytes() / 2;
        let mut heard = [0i16; MAX_AIR_SAMPLES];
        let heard = &mut heard[..samples.min(MAX_AIR_SAMPLES)];
        if let Some(codes) = self.jitter.pull(octets) {
            if link_up {
                match &mut self.decoder {
                    Decoder::G726(d) => d.decode(&codes, heard),
                    Decoder::G722(d) => d.decode(&codes, heard),
                };
            }
        }

        let mut said = [0i16; MAX_AIR_SAMPLES];
        let said = &mut said[..heard.len()];
        if link_up {
            match self.person {
                HandsetAudio::Echo => said.copy_from_slice(heard),
                HandsetAudio::Tone { hz } => {
                    let step = f64::from(hz) / f64::from(self.codec.sample_rate());
                    for s in said.iter_mut() {
                        *s = (TONE_AMPLITUDE * (std::f64::consts::TAU * self.tone_phase).sin())
                            as i16;
                        self.tone_phase = (self.tone_phase + step).fract();
                    }
                }
                HandsetAudio::Silence => {}
            }
        }

        let mut codes = [0u8; MAX_AIR_SAMPLES / 2];
        let n = match &mut self.encoder {
            Encoder::G726(e) => e.encode(said, &mut codes),
            Encoder::G722(e) => e.encode(said, &mut codes),
        };
        self.uplink
            .extend_from_slice(codes.get(..n.min(octets)).unwrap_or_default());
        if self.uplink.len() >= self.codec.frame_bytes() {
            let frame = std::mem::take(&mut self.uplink);
            self.uplink.reserve(self.codec.frame_bytes());
            return Some(frame);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_buffer_prefills_plays_halves_and_recovers_from_underrun() {
        let mut jb = JitterBuffer::default();
        jb.push(vec![1; 4]);
        assert_eq!(jb.pull(2), None, "waits for the prefill");
        jb.push(vec![2; 4]);
        assert_eq!(jb.pull(2), Some(vec![1, 1]));
        assert_eq!(jb.pull(2), Some(vec![1, 1]));
        assert_eq!(jb.pull(2), Some(vec![2, 2]));
        assert_eq!(jb.pull(2), Some(vec![2, 2]));
        assert_eq!(jb.pull(2), None, "underrun");
        jb.push(vec![3; 4]);
        assert_eq!(jb.pull(2), None, "prefills again");
        jb.push(vec![4; 4]);
        assert_eq!(jb.pull(2), Some(vec![3, 3]));
    }

    #[test]
    fn jitter_buffer_drops_the_oldest_when_full() {
        let mut jb = JitterBuffer::default();
        for i in 0..(JITTER_CAPACITY as u8 + 2) {
            jb.push(vec![i; 2]);
        }
        assert_eq!(jb.len(), JITTER_CAPACITY);
        assert_eq!(jb.pull(2), Some(vec![2, 2]));
    }

    #[test]
    fn frames_come_every_second_air_frame_at_the_codec_size() {
        for codec in [AudioCodec::G726_32, AudioCodec::G722] {
            let mut audio = CallAudio::new(codec, HandsetAudio::Tone { hz: 1000 }, 0);
            let frames: Vec<_> = (0..10).filter_map(|_| audio.air_frame(true)).collect();
            assert_eq!(frames.len(), 5);
            assert!(frames.iter().all(|f| f.len() == codec.frame_bytes()));
        }
    }

    #[test]
    fn wrong_sized_frames_are_refused() {
        let mut audio = CallAudio::new(AudioCodec::G726_32, HandsetAudio::Echo, 0);
        assert!(!audio.push_downlink(&[0; 160]));
        assert!(!audio.push_downlink(&[]));
        assert!(audio.push_downlink(&[0; 80]));
        assert_eq!(audio.jitter_len(), 1);
    }
}
