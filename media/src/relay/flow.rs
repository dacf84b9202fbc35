//! One direction of a session: which payload types pass and what they become, the G.711
//! A-law <-> u-law step done in place, and the outgoing SSRC, sequence and timestamp, kept
//! continuous when the sender restarts its stream (a re-INVITE, a new phone on the call).

use super::audio::{AudioPath, AudioPlan};
use crate::codec::g711;
use crate::rtp::header::RtpPacket;
use crate::rtp::stats::StreamStats;
use crate::transcode::TranscodeError;

/// A payload step done in the packet's own buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transcode {
    None,
    UlawToAlaw,
    AlawToUlaw,
}

/// Not a payload type: marks an entry of the map as "drop".
const DROP: u8 = 0xFF;

/// How packets of a direction are rewritten. A fixed array, so applying it never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// Incoming payload type -> outgoing payload type, `0xFF` = drop.
    pt_map: [u8; 128],
    /// The incoming payload type whose payload `transcode` applies to.
    transcode_pt: Option<u8>,
    transcode: Transcode,
    /// RTP clock of the outgoing stream, for timestamp continuity.
    pub clock_rate: u32,
}

impl FlowSpec {
    /// Every payload type passes unchanged: the relay before any answer says otherwise.
    pub fn passthrough(clock_rate: u32) -> FlowSpec {
        let mut pt_map = [0u8; 128];
        for (i, p) in pt_map.iter_mut().enumerate() {
            *p = i as u8;
        }
        FlowSpec {
            pt_map,
            transcode_pt: None,
            transcode: Transcode::None,
            clock_rate,
        }
    }

    /// Only the listed payload types pass, renumbered (`(in, out)`); `transcode` applies to
    /// the first pair's payload.
    pub fn mapped(pairs: &[(u8, u8)], transcode: Transcode, clock_rate: u32) -> FlowSpec {
        let mut pt_map = [DROP; 128];
        for &(i, o) in pairs {
            if let Some(p) = pt_map.get_mut(usize::from(i)) {
                *p = o & 0x7F;
            }
        }
        FlowSpec {
            pt_map,
            transcode_pt: pairs.first().map(|p| p.0),
            transcode,
            clock_rate,
        }
    }
}

impl FlowSpec {
    /// Like [`FlowSpec::mapped`], but payload types not listed pass unchanged instead of
    /// being dropped: what a relay between legs that share their codec should do, since
    /// phones send payload types they never signalled (comfort noise, a pcap's own codec)
    /// and rtpengine passes them too.
    pub fn mapped_or_pass(pairs: &[(u8, u8)], transcode: Transcode, clock_rate: u32) -> FlowSpec {
        let mut spec = FlowSpec::passthrough(clock_rate);
        for &(i, o) in pairs {
            if let Some(p) = spec.pt_map.get_mut(usize::from(i)) {
                *p = o & 0x7F;
            }
        }
        spec.transcode_pt = pairs.first().map(|p| p.0);
        spec.transcode = transcode;
        spec
    }
}

/// The state of one direction.
#[derive(Debug)]
pub struct Flow {
    spec: FlowSpec,
    pub out_ssrc: u32,
    in_ssrc: Option<u32>,
    seq_delta: u16,
    ts_delta: u32,
    /// Last packet sent: sequence, timestamp, when (ms on the relay's clock).
    last_out: Option<(u16, u32, u64)>,
    pub stats: StreamStats,
    /// Set when this direction decodes (see `audio.rs`); `spec` is then unused.
    pub(super) audio: Option<Box<AudioPath>>,
}

impl Flow {
    pub fn new(spec: FlowSpec, out_ssrc: u32) -> Flow {
        Flow {
            spec,
            out_ssrc,
            in_ssrc: None,
            seq_delta: 0,
            ts_delta: 0,
            last_out: None,
            stats: StreamStats::default(),
            audio: None,
        }
    }

    /// A new negotiation: new payload types or transcoding, same outgoing stream.
    pub fn respec(&mut self, spec: FlowSpec) {
        if let Some(a) = self.audio.take() {
            self.continue_after_audio(&a);
        }
        self.spec = spec;
    }

    /// Makes this direction decode and re-encode; the outgoing stream continues.
    pub fn set_audio(&mut self, plan: AudioPlan, now_ms: u64) -> Result<(), TranscodeError> {
        if self.audio.as_ref().is_some_and(|a| *a.plan() == plan) {
            return Ok(());
        }
        let from = match self.audio.take() {
            Some(a) => a.last_sent(),
            None => self.last_out.map(|(s, t, _)| (s, t)),
        };
        self.audio = Some(Box::new(AudioPath::new(plan, from)?));
        self.last_out = from.map(|(s, t)| (s, t, now_ms));
        Ok(())
    }

    /// Back to relaying: the next packet continues from what the decoding path sent last.
    fn continue_after_audio(&mut self, a: &AudioPath) {
        if let Some((s, t)) = a.last_sent() {
            let at = self.last_out.map_or(0, |l| l.2);
            self.last_out = Some((s, t, at));
        }
        self.in_ssrc = None;
    }

    /// RTP clock of the packets received (for jitter).
    pub(super) fn clock_rate(&self) -> u32 {
        match &self.audio {
            Some(a) => a.plan().from.rtp_clock(),
            None => self.spec.clock_rate,
        }
    }

    /// The decoding path's sender, for RTCP translation.
    pub(super) fn note_source(&mut self, ssrc: u32) {
        self.in_ssrc = Some(ssrc);
    }

    /// Notes what the decoding path sent, for continuity if the direction goes back to relaying.
    pub(super) fn audio_sent(&mut self, now_ms: u64) {
        if let Some((s, t)) = self.audio.as_ref().and_then(|a| a.last_sent()) {
            self.last_out = Some((s, t, now_ms));
        }
    }

    /// The SSRC the sender uses, once known.
    pub fn in_ssrc(&self) -> Option<u32> {
        self.in_ssrc
    }

    /// Rewrites `p` for the other leg; `false` if its payload type is not negotiated.
    pub fn forward(&mut self, p: &mut RtpPacket<'_>, now_ms: u64, len: usize) -> bool {
        let in_pt = p.payload_type();
        let out_pt = self.spec.pt_map[usize::from(in_pt)];
        if out_pt == DROP {
            return false;
        }
        let clock = u64::from(self.spec.clock_rate.max(1));
        let (seq, ts) = (p.sequence(), p.timestamp());
        self.stats.record(seq, ts, now_ms * clock / 1000, len);
        let ssrc = p.ssrc();
        if self.in_ssrc != Some(ssrc) {
            // A new source: continue our stream where it stopped, as if the sender had been
            // silent meanwhile (RFC 3550 5.1: timestamps advance with real time).
            if let Some((last_seq, last_ts, at)) = self.last_out {
                let elapsed = (now_ms.saturating_sub(at) * clock / 1000).max(1) as u32;
                self.seq_delta = last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_delta = last_ts.wrapping_add(elapsed).wrapping_sub(ts);
                p.set_marker(true);
            }
            self.in_ssrc = Some(ssrc);
        }
        let out_seq = seq.wrapping_add(self.seq_delta);
        let out_ts = ts.wrapping_add(self.ts_delta);
        p.set_ssrc(self.out_ssrc);
        p.set_sequence(out_seq);
        p.set_timestamp(out_ts);
        p.set_payload_type(out_pt);
        if self.spec.transcode_pt == Some(in_pt) {
            match self.spec.transcode {
                Transcode::None => {}
                Transcode::UlawToAlaw => g711::ulaw_to_alaw_in_place(p.payload_mut()),
                Transcode::AlawToUlaw => g711::alaw_to_ulaw_in_place(p.payload_mut()),
            }
        }
        // Reordered packets must not move the continuation point backwards.
        let newer = self
            .last_out
            .is_none_or(|(s, _, _)| out_seq.wrapping_sub(s) < 0x8000);
        if newer {
            self.last_out = Some((out_seq, out_ts, now_ms));
        }
        true
    }
}
